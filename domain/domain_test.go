package domain_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auraos/realtime/domain"
)

var at = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func profile(uid string) domain.UserProfile {
	return domain.UserProfile{UID: uid, Email: uid + "@example.com", DisplayName: "User " + uid}
}

func TestActAsBindsOnceThenForbids(t *testing.T) {
	t.Parallel()
	a := domain.Actor{SessionID: "s1"}
	bound, err := a.ActAs("userId", "u1")
	if err != nil || bound.UserID != "u1" {
		t.Fatalf("first bind: %+v %v", bound, err)
	}
	if _, err := bound.ActAs("userId", "u1"); err != nil {
		t.Fatalf("same user again: %v", err)
	}
	_, err = bound.ActAs("userId", "u2")
	if domain.ErrorCode(err) != domain.EFORBIDDEN || domain.ErrorField(err) != "userId" {
		t.Fatalf("other user: %v", err)
	}
	if _, err := a.ActAs("userId", ""); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("empty uid: %v", err)
	}
}

func TestJoinPresence(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		actor   domain.Actor
		userID  string
		profile domain.UserProfile
		code    string
		field   string
	}{
		{"ok", domain.Actor{}, "u1", profile("u1"), "", ""},
		{"bound to same", domain.Actor{UserID: "u1"}, "u1", profile("u1"), "", ""},
		{"bound to other", domain.Actor{UserID: "u2"}, "u1", profile("u1"), domain.EFORBIDDEN, "userId"},
		{"profile of other", domain.Actor{}, "u1", profile("u2"), domain.EFORBIDDEN, "userProfile.uid"},
		{"empty user", domain.Actor{}, "", profile("u1"), domain.EINVALID, "userId"},
		{"long user", domain.Actor{}, strings.Repeat("x", 129), profile("u1"), domain.EINVALID, "userId"},
		{"control char", domain.Actor{}, "u\x001", profile("u1"), domain.EINVALID, "userId"},
		{"bad email", domain.Actor{}, "u1", domain.UserProfile{UID: "u1", Email: "nope"}, domain.EINVALID, "userProfile.email"},
		{"empty email", domain.Actor{}, "u1", domain.UserProfile{UID: "u1"}, domain.EINVALID, "userProfile.email"},
		{"javascript photo", domain.Actor{}, "u1", domain.UserProfile{UID: "u1", Email: "a@b.c", PhotoURL: "javascript:alert(1)"}, domain.EINVALID, "userProfile.photoURL"},
		{"long name", domain.Actor{}, "u1", domain.UserProfile{UID: "u1", Email: "a@b.c", DisplayName: strings.Repeat("n", 129)}, domain.EINVALID, "userProfile.displayName"},
	}
	for _, c := range cases {
		ev, bound, err := domain.JoinPresence(c.actor, c.userID, c.profile, at)
		if domain.ErrorCode(err) != c.code || domain.ErrorField(err) != c.field {
			t.Errorf("%s: err %v (field %q), want code %q field %q", c.name, err, domain.ErrorField(err), c.code, c.field)
			continue
		}
		if c.code == "" && (ev.UserID != c.userID || bound.UserID != c.userID || ev.Stream() != "presence-"+c.userID || ev.Status != "online") {
			t.Errorf("%s: event %+v actor %+v", c.name, ev, bound)
		}
	}
}

func TestPostMessage(t *testing.T) {
	t.Parallel()
	a := domain.Actor{SessionID: "s1"}
	in := func(mod func(*domain.PostMessageInput)) domain.PostMessageInput {
		i := domain.PostMessageInput{RoomName: "general", Message: "  hello  ", Profile: profile("u1")}
		mod(&i)
		return i
	}
	cases := []struct {
		name  string
		in    domain.PostMessageInput
		code  string
		field string
	}{
		{"ok", in(func(*domain.PostMessageInput) {}), "", ""},
		{"system", in(func(i *domain.PostMessageInput) { i.MessageType = "system" }), "", ""},
		{"ai claimed", in(func(i *domain.PostMessageInput) { i.MessageType = "ai_response" }), domain.EINVALID, "messageType"},
		{"unknown type", in(func(i *domain.PostMessageInput) { i.MessageType = "html" }), domain.EINVALID, "messageType"},
		{"blank", in(func(i *domain.PostMessageInput) { i.Message = " \n\t " }), domain.EINVALID, "message"},
		{"1000 after trim", in(func(i *domain.PostMessageInput) { i.Message = " " + strings.Repeat("é", 1000) + " " }), "", ""},
		{"1001", in(func(i *domain.PostMessageInput) { i.Message = strings.Repeat("a", 1001) }), domain.EINVALID, "message"},
		{"multiline ok", in(func(i *domain.PostMessageInput) { i.Message = "a\nb" }), "", ""},
		{"room empty", in(func(i *domain.PostMessageInput) { i.RoomName = "" }), domain.EINVALID, "roomName"},
		{"room 129", in(func(i *domain.PostMessageInput) { i.RoomName = strings.Repeat("r", 129) }), domain.EINVALID, "roomName"},
		{"client id 65", in(func(i *domain.PostMessageInput) { i.ClientMsgID = strings.Repeat("c", 65) }), domain.EINVALID, "clientMsgId"},
		{"invalid utf8", in(func(i *domain.PostMessageInput) { i.Message = "a\xffb" }), domain.EINVALID, "message"},
	}
	for _, c := range cases {
		m, _, err := domain.PostMessage(a, c.in, "id-1", at)
		if domain.ErrorCode(err) != c.code || domain.ErrorField(err) != c.field {
			t.Errorf("%s: err %v, want %q/%q", c.name, err, c.code, c.field)
			continue
		}
		if c.code == "" && (m.Message != strings.TrimSpace(c.in.Message) || m.IsAI || m.UserName != "User u1" || m.UserAvatar != nil) {
			t.Errorf("%s: %+v", c.name, m)
		}
	}
	p := profile("u1")
	p.PhotoURL = "https://example.com/a.png"
	m, _, err := domain.PostMessage(domain.Actor{UserID: "u1"}, domain.PostMessageInput{RoomName: "r", Message: "x", Profile: p}, "id", at)
	if err != nil || m.UserAvatar == nil || *m.UserAvatar != p.PhotoURL || m.MessageType != domain.MessageText {
		t.Fatalf("avatar and default type: %+v %v", m, err)
	}
	if _, _, err := domain.PostMessage(domain.Actor{UserID: "u2"}, domain.PostMessageInput{RoomName: "r", Message: "x", Profile: p}, "id", at); domain.ErrorCode(err) != domain.EFORBIDDEN {
		t.Fatalf("posting as another user: %v", err)
	}
}

func TestNameFallsBack(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p    domain.UserProfile
		want string
	}{
		{domain.UserProfile{UID: "u", Email: "e@x", DisplayName: "D"}, "D"},
		{domain.UserProfile{UID: "u", Email: "e@x", DisplayName: "  "}, "e@x"},
		{domain.UserProfile{UID: "u"}, "u"}, // a verified token may lack both
	} {
		if got := c.p.Name(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.p, got, c.want)
		}
	}
}

func TestOtherDecisions(t *testing.T) {
	t.Parallel()
	a := domain.Actor{UserID: "u1", SessionID: "s1"}
	admin := domain.Actor{UserID: "root", Admin: true}
	check := func(name string, err error, code, field string) {
		t.Helper()
		if domain.ErrorCode(err) != code || domain.ErrorField(err) != field {
			t.Errorf("%s: %v, want %q/%q", name, err, code, field)
		}
	}
	_, err := domain.SendNotification(a, "u2", "T", "M", "info", json.RawMessage(`{"k":1}`), at)
	check("notification ok", err, "", "")
	_, err = domain.SendNotification(a, "u2", "T", "M", "urgent", nil, at)
	check("notification type", err, domain.EINVALID, "notification.type")
	_, err = domain.SendNotification(a, "u2", strings.Repeat("t", 201), "M", "info", nil, at)
	check("notification title", err, domain.EINVALID, "notification.title")
	_, err = domain.SendNotification(a, "u2", "T", strings.Repeat("m", 2001), "info", nil, at)
	check("notification message", err, domain.EINVALID, "notification.message")
	_, err = domain.SendNotification(a, "u2", "T", "M", "info", json.RawMessage(`"`+strings.Repeat("d", 16<<10)+`"`), at)
	check("notification data", err, domain.EINVALID, "notification.data")

	_, err = domain.BroadcastAlert(a, "T", "M", "info", nil, at)
	check("alert non-admin", err, domain.EFORBIDDEN, "")
	_, err = domain.BroadcastAlert(admin, "T", "M", "info", &domain.AlertAction{Label: "More", URL: "/maintenance"}, at)
	check("alert ok", err, "", "")
	_, err = domain.BroadcastAlert(admin, "T", "M", "fatal", nil, at)
	check("alert severity", err, domain.EINVALID, "severity")
	_, err = domain.BroadcastAlert(admin, "T", "M", "info", &domain.AlertAction{Label: "x", URL: "javascript:alert(1)"}, at)
	check("alert action url", err, domain.EINVALID, "action.url")

	ev, err := domain.ChangeAppStatus(a, "app1", "active", domain.AppInactive, at)
	check("app ok", err, "", "")
	if ev.PreviousStatus != domain.AppInactive || ev.Stream() != "app-app1" {
		t.Errorf("app event %+v", ev)
	}
	_, err = domain.ChangeAppStatus(a, "app1", "paused", "", at)
	check("app status", err, domain.EINVALID, "status")

	d, err := domain.UpdateDataAgent(a, "agent1", "processing", nil, at)
	check("agent ok", err, "", "")
	if string(d.Data) != "null" {
		t.Errorf("absent agent data = %s", d.Data)
	}
	_, err = domain.UpdateDataAgent(a, "agent1", "", nil, at)
	check("agent status", err, domain.EINVALID, "status")
}

func TestDecodeRoundTripsEveryEvent(t *testing.T) {
	t.Parallel()
	avatar := "https://x/y.png"
	events := []domain.Event{
		domain.PresenceJoined{SchemaVersion: 1, UserID: "u", SessionID: "s", NodeID: "n", Profile: profile("u"), Status: "online", At: at},
		domain.PresenceLeft{SchemaVersion: 1, UserID: "u", SessionID: "s", NodeID: "n", Reason: domain.ReasonDisconnect, At: at},
		domain.ChatMemberJoined{SchemaVersion: 1, RoomName: "r", UserID: "u", SessionID: "s", Profile: profile("u"), At: at},
		domain.ChatMemberLeft{SchemaVersion: 1, RoomName: "r", UserID: "u", SessionID: "s", Reason: domain.ReasonLeave, At: at},
		domain.MessagePosted{SchemaVersion: 1, ID: "m", RoomName: "r", UserID: "u", UserName: "U", UserAvatar: &avatar, Message: "hi", MessageType: domain.MessageText, At: at},
		domain.NotificationSent{SchemaVersion: 1, To: "u2", From: "u", Title: "t", Message: "m", Type: "info", Data: json.RawMessage(`{"a":1}`), At: at},
		domain.SystemAlertBroadcast{SchemaVersion: 1, Title: "t", Message: "m", Severity: "info", By: "root", At: at},
		domain.AppStatusChanged{SchemaVersion: 1, AppID: "a", Status: domain.AppActive, At: at},
		domain.DataAgentUpdated{SchemaVersion: 1, AgentID: "g", Status: "ok", Data: json.RawMessage(`[1]`), At: at},
		domain.NodeStarted{SchemaVersion: 1, NodeID: "n", At: at},
		domain.UserForgotten{SchemaVersion: 1, UserID: "u", Reason: "asked", By: "ops", At: at},
	}
	var types []string
	for _, e := range events {
		types = append(types, e.EventType())
	}
	if got := domain.EventTypes(); !slices.Equal(got, types) {
		t.Errorf("EventTypes() = %v, want every event type once: %v", got, types)
	}
	for _, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := domain.Decode(e.EventType(), data)
		if err != nil {
			t.Fatalf("%s: %v", e.EventType(), err)
		}
		again, _ := json.Marshal(got)
		if string(again) != string(data) || got.EventType() != e.EventType() || got.Stream() != e.Stream() {
			t.Errorf("%s: %s became %s", e.EventType(), data, again)
		}
	}
	if _, err := domain.Decode("Nope", []byte(`{}`)); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := domain.Decode(domain.TypeMessagePosted, []byte(`{"message":5}`)); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("bad data: %v", err)
	}
	if _, err := domain.Decode(domain.TypeNodeStarted, []byte(`{"schemaVersion":99}`)); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("future schema: %v", err)
	}
}

// Text that is only white space is as empty as no text: every required
// field refuses it, naming itself.
func TestBlankTextIsRefused(t *testing.T) {
	t.Parallel()
	a := domain.Actor{UserID: "u1", SessionID: "s1"}
	blank := "  \u00a0\u3000 " // spaces, a no-break space and an ideographic space
	cases := []struct {
		field string
		err   func() error
	}{
		{"roomName", func() error { return domain.CheckRoomName("roomName", blank) }},
		{"roomName", func() error { _, _, err := domain.JoinChat(a, blank, profile("u1"), at); return err }},
		{"roomName", func() error {
			_, _, err := domain.PostMessage(a, domain.PostMessageInput{RoomName: "  ", Message: "hi", Profile: profile("u1")}, "m", at)
			return err
		}},
		{"to", func() error { _, err := domain.SendNotification(a, blank, "T", "M", "info", nil, at); return err }},
		{"notification.title", func() error { _, err := domain.SendNotification(a, "u2", blank, "M", "info", nil, at); return err }},
		{"notification.message", func() error { _, err := domain.SendNotification(a, "u2", "T", " \n\t ", "info", nil, at); return err }}, // multiline: newline and tab are allowed
		{"appId", func() error { _, err := domain.ChangeAppStatus(a, blank, "active", "", at); return err }},
		{"agentId", func() error { _, err := domain.UpdateDataAgent(a, blank, "ok", nil, at); return err }},
		{"status", func() error { _, err := domain.UpdateDataAgent(a, "agent1", blank, nil, at); return err }},
		{"userId", func() error { _, err := domain.Actor{}.ActAs("userId", blank); return err }},
		{"title", func() error {
			_, err := domain.BroadcastAlert(domain.Actor{UserID: "root", Admin: true}, blank, "M", "info", nil, at)
			return err
		}},
	}
	for _, c := range cases {
		err := c.err()
		if domain.ErrorCode(err) != domain.EINVALID || domain.ErrorField(err) != c.field || !strings.Contains(domain.ErrorMessage(err), c.field) {
			t.Errorf("blank %s: %v, want INVALID_PAYLOAD naming %s", c.field, err, c.field)
		}
	}
	// Text around white space is still text, and a display name may be
	// blank (the email stands in).
	if _, _, err := domain.JoinChat(a, " a room ", profile("u1"), at); err != nil {
		t.Errorf("a room name with spaces: %v", err)
	}
	p := profile("u1")
	p.DisplayName = "  "
	if err := p.Validate("userProfile"); err != nil {
		t.Errorf("blank display name: %v", err)
	}
}

func TestPersonalFieldsNameFieldsOfTheirEvents(t *testing.T) {
	t.Parallel()
	avatar := "https://x/y.png"
	full := profile("u")
	full.PhotoURL = avatar
	for _, e := range []domain.Event{
		domain.PresenceJoined{UserID: "u", Profile: full},
		domain.ChatMemberJoined{UserID: "u", Profile: full},
		domain.ChatMemberLeft{UserID: "u", Profile: full},
		domain.MessagePosted{UserID: "u", UserName: "U", UserAvatar: &avatar, Message: "hi"},
		domain.NotificationSent{From: "u", Title: "t", Message: "m", Data: json.RawMessage(`{}`)},
	} {
		pd, ok := domain.PersonalDataOf(e.EventType())
		if !ok {
			t.Fatalf("%s has no personal data", e.EventType())
		}
		raw, _ := json.Marshal(e)
		var top map[string]any
		if err := json.Unmarshal(raw, &top); err != nil {
			t.Fatal(err)
		}
		if top[pd.Subject] != "u" {
			t.Errorf("%s: subject field %q is %v", e.EventType(), pd.Subject, top[pd.Subject])
		}
		for _, f := range pd.Fields {
			var v any = top
			for _, step := range f.Path {
				v = v.(map[string]any)[step]
			}
			if v == nil {
				t.Errorf("%s: personal field %v is not in %s", e.EventType(), f.Path, raw)
			}
			if !json.Valid(f.Placeholder) {
				t.Errorf("%s: placeholder of %v is not JSON", e.EventType(), f.Path)
			}
		}
	}
	for _, typ := range []string{domain.TypePresenceLeft, domain.TypeSystemAlertBroadcast, domain.TypeUserForgotten, domain.TypeNodeStarted} {
		if _, ok := domain.PersonalDataOf(typ); ok {
			t.Errorf("%s declares personal data", typ)
		}
	}
}

func TestForgetUser(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		uid, reason, by string
		field           string
	}{
		{"u", "asked by email", "ops", ""},
		{"", "asked", "ops", "userId"},
		{"u", "", "ops", "reason"},
		{"u", strings.Repeat("r", domain.MaxForgetReasonLength+1), "ops", "reason"},
		{"u", "asked", "", "by"},
	} {
		e, err := domain.ForgetUser(tc.uid, tc.reason, tc.by, at)
		if tc.field == "" {
			if err != nil || e.UserID != tc.uid || e.Stream() != "user-"+tc.uid || e.SchemaVersion != domain.SchemaVersion {
				t.Errorf("ForgetUser(%q) = %+v, %v", tc.uid, e, err)
			}
			continue
		}
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.EINVALID || de.Field != tc.field {
			t.Errorf("ForgetUser(%q, %q, %q): %v; want EINVALID on %s", tc.uid, tc.reason, tc.by, err, tc.field)
		}
	}
}
