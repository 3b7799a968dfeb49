package app

import (
	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/socketadapter"
)

// HandlersFor returns the application's command handlers over deps, as the
// Socket.IO adapter calls them.
func HandlersFor(deps commands.Deps) socketadapter.Handlers {
	return socketadapter.Handlers{
		JoinUserRoom:         commands.JoinUserRoomHandler{Deps: deps},
		JoinChatRoom:         commands.JoinChatRoomHandler{Deps: deps},
		LeaveChatRoom:        commands.LeaveChatRoomHandler{Deps: deps},
		SendMessage:          commands.SendMessageHandler{Deps: deps},
		SendNotification:     commands.SendNotificationHandler{Deps: deps},
		BroadcastSystemAlert: commands.BroadcastSystemAlertHandler{Deps: deps},
		UpdateAppStatus:      commands.UpdateAppStatusHandler{Deps: deps},
		UpdateDataAgent:      commands.UpdateDataAgentHandler{Deps: deps},
		EndSession:           commands.EndSessionHandler{Deps: deps},
	}
}
