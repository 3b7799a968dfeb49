package socketadapter

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"

	"github.com/auraos/realtime/domain"
)

// AdminCredentials say who is an operator: the one username with a password
// checked against a bcrypt hash (as the Node Admin UI package does), or a
// verified token that makes its bearer an admin (PROTOCOL.md's admin
// claims). Both the Admin UI namespace and the /console pages check them.
// It is safe for concurrent use.
type AdminCredentials struct {
	username string
	hash     []byte
	tokens   Authenticator
	// good is the digest of the last username and password that matched,
	// so that a console polling with Basic authentication pays bcrypt's
	// cost once, not on every request.
	good atomic.Pointer[[sha256.Size]byte]
}

// NewAdminCredentials returns the credentials of username with the bcrypt
// hash (empty: no password login) and tokens, the authenticator whose
// verified identities with Admin set are operators (nil: no token login).
// It returns an EINVALID error when hash is not a bcrypt hash, when the
// username is empty while a hash is given, or when neither a hash nor tokens
// are given (nobody could log in).
func NewAdminCredentials(username string, hash []byte, tokens Authenticator) (*AdminCredentials, error) {
	if len(hash) == 0 && tokens == nil {
		return nil, domain.Errorf(domain.EINVALID, "the admin credentials need a bcrypt password hash or a token verifier")
	}
	if len(hash) > 0 {
		if _, err := bcrypt.Cost(hash); err != nil {
			return nil, domain.WrapError(domain.EINVALID, "the admin password hash is not a bcrypt hash (make one with `auraos hash-password`)", err)
		}
		if username == "" {
			return nil, domain.Errorf(domain.EINVALID, "the admin username is empty")
		}
	}
	return &AdminCredentials{username: username, hash: hash, tokens: tokens}, nil
}

// CheckPassword reports whether username and password are the operator's.
// It is always false without a password hash.
func (c *AdminCredentials) CheckPassword(username, password string) bool {
	if len(c.hash) == 0 {
		return false
	}
	digest := sha256.Sum256([]byte(username + "\x00" + password))
	if g := c.good.Load(); g != nil && subtle.ConstantTimeCompare(g[:], digest[:]) == 1 {
		return true
	}
	if subtle.ConstantTimeCompare([]byte(username), []byte(c.username)) != 1 {
		return false
	}
	if bcrypt.CompareHashAndPassword(c.hash, []byte(password)) != nil {
		return false
	}
	c.good.Store(&digest)
	return true
}

// CheckToken verifies a token and reports whether it names an admin. It
// returns nil for an admin's token, an EAUTH error for a token that does not
// verify (or when no token verifier is configured), and an EFORBIDDEN error
// for a valid token without admin rights.
func (c *AdminCredentials) CheckToken(ctx context.Context, token string) error {
	if c.tokens == nil || token == "" {
		return domain.Errorf(domain.EAUTH, "invalid credentials")
	}
	id, err := c.tokens.Authenticate(ctx, Handshake{Auth: map[string]any{"token": token}, Header: http.Header{}})
	if err != nil {
		return domain.WrapError(domain.EAUTH, "invalid credentials", err)
	}
	if !id.Admin {
		return domain.Errorf(domain.EFORBIDDEN, "the token is not an admin's")
	}
	return nil
}
