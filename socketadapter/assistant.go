package socketadapter

// AssistantTyping sends user_typing {userId, userName, isTyping} from the
// server's AI assistant to every member of a chat room, on every node when
// Config.Signals is set. It is ephemeral (nothing is stored), never blocks
// on clients, and may be called from any goroutine; it implements
// commands.TypingNotifier.
func (srv *Server) AssistantTyping(room, userID, userName string, isTyping bool) {
	srv.sendTyping(room, "", typingPayload{UserID: userID, UserName: userName, IsTyping: isTyping})
}
