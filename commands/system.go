package commands

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// SendNotification is a send_notification.
type SendNotification struct {
	Cause
	To      string
	Title   string
	Message string
	Type    string
	Data    json.RawMessage
}

// SendNotificationHandler handles SendNotification.
type SendNotificationHandler struct{ Deps }

// Handle appends NotificationSent to the recipient's stream. It returns
// EINVALID for a bad payload and the store's errors.
func (h SendNotificationHandler) Handle(ctx context.Context, cmd SendNotification) (Stored, error) {
	ev, err := domain.SendNotification(cmd.Actor, cmd.To, cmd.Title, cmd.Message, cmd.Type, cmd.Data, h.Now())
	if err != nil {
		return Stored{}, err
	}
	pos, err := appendOne(ctx, h.Store, ev, cmd.eventID(ev.EventType(), 0), eventstore.Any, cmd.Cause, cmd.Actor)
	return Stored{pos}, err
}

// BroadcastSystemAlert is a broadcast_system_alert.
type BroadcastSystemAlert struct {
	Cause
	Title    string
	Message  string
	Severity string
	Action   *domain.AlertAction
}

// BroadcastSystemAlertHandler handles BroadcastSystemAlert.
type BroadcastSystemAlertHandler struct{ Deps }

// Handle appends SystemAlertBroadcast. It returns EFORBIDDEN for a non-admin,
// EINVALID for a bad alert and the store's errors.
func (h BroadcastSystemAlertHandler) Handle(ctx context.Context, cmd BroadcastSystemAlert) (Stored, error) {
	ev, err := domain.BroadcastAlert(cmd.Actor, cmd.Title, cmd.Message, cmd.Severity, cmd.Action, h.Now())
	if err != nil {
		return Stored{}, err
	}
	pos, err := appendOne(ctx, h.Store, ev, cmd.eventID(ev.EventType(), 0), eventstore.Any, cmd.Cause, cmd.Actor)
	return Stored{pos}, err
}

// UpdateAppStatus is an update_app_status.
type UpdateAppStatus struct {
	Cause
	AppID  string
	Status string
}

// AppStatusUpdated is what UpdateAppStatus stored.
type AppStatusUpdated struct {
	Stored
	Event domain.AppStatusChanged
}

// UpdateAppStatusHandler handles UpdateAppStatus.
type UpdateAppStatusHandler struct{ Deps }

// maxConflictRetries bounds the reload-and-retry loop of a handler that
// appends with an exact expected version.
const maxConflictRetries = 8

// Handle appends AppStatusChanged after the app's last event, recording the
// previous status; a concurrent update makes it reload and decide again. It
// returns EINVALID for a bad payload, ECONFLICT if the app keeps changing
// under it, and the store's errors.
func (h UpdateAppStatusHandler) Handle(ctx context.Context, cmd UpdateAppStatus) (AppStatusUpdated, error) {
	if err := domain.CheckID("appId", cmd.AppID); err != nil {
		return AppStatusUpdated{}, err
	}
	id := cmd.eventID(domain.TypeAppStatusChanged, 0)
	at := h.Now()
	for attempt := 0; ; attempt++ {
		previous, expected, err := h.current(ctx, cmd.AppID)
		if err != nil {
			return AppStatusUpdated{}, err
		}
		ev, err := domain.ChangeAppStatus(cmd.Actor, cmd.AppID, cmd.Status, previous, at)
		if err != nil {
			return AppStatusUpdated{}, err
		}
		pos, err := appendOne(ctx, h.Store, ev, id, expected, cmd.Cause, cmd.Actor)
		if errors.Is(err, eventstore.ErrWrongExpectedVersion) && attempt < maxConflictRetries {
			continue
		}
		if err != nil {
			return AppStatusUpdated{}, err
		}
		return AppStatusUpdated{Stored: Stored{pos}, Event: ev}, nil
	}
}

// current reads the app's last status and the expected version to append
// after it.
func (h UpdateAppStatusHandler) current(ctx context.Context, appID string) (domain.AppStatus, eventstore.ExpectedVersion, error) {
	last, err := h.Store.ReadStream(ctx, domain.AppStream(appID), eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
	if err != nil {
		return "", eventstore.Any, err
	}
	if len(last) == 0 {
		return "", eventstore.NoStream, nil
	}
	var prev domain.AppStatusChanged
	if err := json.Unmarshal(last[0].Data, &prev); err != nil {
		return "", eventstore.Any, domain.WrapError(domain.EINTERNAL, "read app status", err)
	}
	return prev.Status, eventstore.Exact(last[0].Version), nil
}

// UpdateDataAgent is a data_agent_update.
type UpdateDataAgent struct {
	Cause
	AgentID string
	Status  string
	Data    json.RawMessage
}

// DataAgentUpdated is what UpdateDataAgent stored.
type DataAgentUpdated struct {
	Stored
	Event domain.DataAgentUpdated
}

// UpdateDataAgentHandler handles UpdateDataAgent.
type UpdateDataAgentHandler struct{ Deps }

// Handle appends DataAgentUpdated. It returns EINVALID for a bad payload and
// the store's errors.
func (h UpdateDataAgentHandler) Handle(ctx context.Context, cmd UpdateDataAgent) (DataAgentUpdated, error) {
	ev, err := domain.UpdateDataAgent(cmd.Actor, cmd.AgentID, cmd.Status, cmd.Data, h.Now())
	if err != nil {
		return DataAgentUpdated{}, err
	}
	pos, err := appendOne(ctx, h.Store, ev, cmd.eventID(ev.EventType(), 0), eventstore.Any, cmd.Cause, cmd.Actor)
	if err != nil {
		return DataAgentUpdated{}, err
	}
	return DataAgentUpdated{Stored: Stored{pos}, Event: ev}, nil
}
