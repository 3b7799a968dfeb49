package domain

import "encoding/json"

// Placeholders are what a personal field reads as once the user it is about
// has been forgotten: fixed values, the same on every read path, so that
// read models rebuilt after a forget hold exactly the rows that live
// processing rewrote.
const (
	PlaceholderName = "Deleted user" // a display name or a message's userName
	PlaceholderText = "[deleted]"    // a message's text, a notification's title and message
)

// MaxForgetReasonLength is the longest reason a UserForgotten carries.
const MaxForgetReasonLength = 200

// PersonalField is one JSON field of an event's data that holds personal
// data: Path leads from the data's top-level object to it, and Placeholder
// is the JSON it reads as once its user is forgotten.
type PersonalField struct {
	Path        []string
	Placeholder json.RawMessage
}

// PersonalData says which fields of an event type's data are personal and
// whom they are about.
type PersonalData struct {
	// Subject is the top-level field holding the id of the user the
	// personal fields are about; an event whose subject is empty is about
	// nobody and keeps its fields in clear.
	Subject string
	// NotAPerson, when set, names a top-level boolean field that, when
	// true, says the event is about no person (the assistant's replies).
	NotAPerson string
	// Fields are the personal fields.
	Fields []PersonalField
}

var (
	placeholderName  = json.RawMessage(`"` + PlaceholderName + `"`)
	placeholderText  = json.RawMessage(`"` + PlaceholderText + `"`)
	placeholderEmpty = json.RawMessage(`""`)
	placeholderNull  = json.RawMessage(`null`)

	profileFields = []PersonalField{
		{Path: []string{"profile", "email"}, Placeholder: placeholderEmpty},
		{Path: []string{"profile", "displayName"}, Placeholder: placeholderName},
		{Path: []string{"profile", "photoURL"}, Placeholder: placeholderEmpty},
	}
	personalData = map[string]PersonalData{
		TypePresenceJoined:   {Subject: "userId", Fields: profileFields},
		TypeChatMemberJoined: {Subject: "userId", Fields: profileFields},
		TypeChatMemberLeft:   {Subject: "userId", Fields: profileFields},
		// A message is its author's: name, avatar and text.
		TypeMessagePosted: {Subject: "userId", NotAPerson: "isAI", Fields: []PersonalField{
			{Path: []string{"userName"}, Placeholder: placeholderName},
			{Path: []string{"userAvatar"}, Placeholder: placeholderNull},
			{Path: []string{"message"}, Placeholder: placeholderText},
		}},
		// A notification is its sender's words, as a message is its
		// author's: forgetting the sender erases what they wrote.
		TypeNotificationSent: {Subject: "from", Fields: []PersonalField{
			{Path: []string{"title"}, Placeholder: placeholderText},
			{Path: []string{"message"}, Placeholder: placeholderText},
			{Path: []string{"data"}, Placeholder: placeholderNull},
		}},
	}
)

// PersonalDataOf returns the personal fields of an event type and whom they
// are about, and false for a type that carries no personal data (ids, room
// names, statuses and times are never personal fields: the log stays
// ordered, filtered and verifiable by them). The returned value must not be
// modified.
func PersonalDataOf(eventType string) (PersonalData, bool) {
	pd, ok := personalData[eventType]
	return pd, ok
}
