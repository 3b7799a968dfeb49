// Package jwtauth verifies JSON Web Tokens for the Socket.IO adapter: HS256
// with a shared secret, and RS256/ES256 with keys from a JWKS URL (cached,
// refreshed hourly and on an unknown key id, so key rotation works), with
// optional issuer and audience checks, so Firebase ID tokens work with
// Google's JWKS. It also mints HS256 tokens for development.
//
// Every refusal is an AUTH_FAILED error whose message says what was wrong
// (missing, malformed, bad signature, expired, ...) and never contains the
// token.
package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/socketadapter"
)

// Config says which tokens are valid.
type Config struct {
	// Secret verifies HS256 tokens (and mints them); empty disables HS256.
	Secret []byte
	// JWKSURL is where RS256/ES256 keys are fetched; empty disables them.
	JWKSURL string
	// Issuer and Audience, when set, must match the iss and aud claims.
	Issuer, Audience string
	// Leeway tolerates clock skew on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// HTTPClient fetches the JWKS (default a client with a 10s timeout).
	HTTPClient *http.Client
	// Logger receives JWKS refresh failures (default slog.Default()).
	Logger *slog.Logger
}

// Verifier checks tokens. Create it with New; it is safe for concurrent use.
type Verifier struct {
	cfg  Config
	jwks keyfunc.Keyfunc // nil without a JWKS URL
}

// New returns a verifier for cfg. With a JWKS URL it starts a goroutine that
// refreshes the key set until ctx ends. It returns an error when neither a
// secret nor a JWKS URL is configured.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if len(cfg.Secret) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("jwt: configure a secret (HS256) or a JWKS URL (RS256/ES256)")
	}
	if len(cfg.Secret) > 0 && len(cfg.Secret) < 32 {
		return nil, errors.New("jwt: the secret must be at least 32 bytes")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	v := &Verifier{cfg: cfg}
	if cfg.JWKSURL != "" {
		logger := cfg.Logger
		k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:            cfg.HTTPClient,
			RefreshInterval:   time.Hour,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Minute), 1),
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(_ context.Context, err error) {
					logger.Warn("could not refresh the JWKS", "url", u, "err", err)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("jwt: JWKS %s: %w", cfg.JWKSURL, err)
		}
		v.jwks = k
	}
	return v, nil
}

// Claims are what a verified token says about its user.
type Claims struct {
	jwt.RegisteredClaims
	Email   string `json:"email,omitempty"`
	Name    string `json:"name,omitempty"`
	Picture string `json:"picture,omitempty"`
	Admin   bool   `json:"admin,omitempty"`
	Roles   any    `json:"roles,omitempty"`
	Role    any    `json:"role,omitempty"`
}

// IsAdmin reports whether the claims make the user an admin: admin: true, or
// "admin" in roles or role (a string or a list).
func (c Claims) IsAdmin() bool {
	return c.Admin || hasAdmin(c.Roles) || hasAdmin(c.Role)
}

func hasAdmin(v any) bool {
	switch x := v.(type) {
	case string:
		return x == "admin"
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s == "admin" {
				return true
			}
		}
	case []string:
		for _, s := range x {
			if s == "admin" {
				return true
			}
		}
	}
	return false
}

// authFailed is the AUTH_FAILED error with a client-safe message.
func authFailed(msg string) error { return domain.Errorf(domain.EAUTH, "%s", msg) }

// Verify checks a token's signature, algorithm, times, issuer and audience
// and requires a subject. It returns the claims or an AUTH_FAILED error.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	var methods []string
	if len(v.cfg.Secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if v.jwks != nil {
		methods = append(methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods), jwt.WithLeeway(v.cfg.Leeway), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	if v.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.cfg.Audience))
	}
	if t, _, err := jwt.NewParser().ParseUnverified(token, &Claims{}); err == nil && !slices.Contains(methods, t.Method.Alg()) {
		return Claims{}, authFailed("the token's algorithm is not accepted; it cannot be verified with this server's keys or algorithms")
	}
	var claims Claims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		switch t.Method.(type) {
		case *jwt.SigningMethodHMAC:
			return v.cfg.Secret, nil
		case *jwt.SigningMethodRSA, *jwt.SigningMethodECDSA:
			return v.jwks.KeyfuncCtx(ctx)(t)
		}
		return nil, jwt.ErrTokenUnverifiable
	}, opts...)
	if err != nil {
		return Claims{}, describe(err)
	}
	if err := domain.CheckID("sub", claims.Subject); err != nil {
		return Claims{}, authFailed("the token has no valid subject (sub)")
	}
	return claims, nil
}

// describe turns a parse error into a client-safe AUTH_FAILED error.
func describe(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return authFailed("the token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return authFailed("the token's signature is invalid")
	case errors.Is(err, jwt.ErrTokenExpired):
		return authFailed("the token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return authFailed("the token is not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return authFailed("the token has the wrong issuer")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return authFailed("the token has the wrong audience")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return authFailed("the token lacks a required claim (exp)")
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, keyfunc.ErrKeyfunc):
		return authFailed("the token cannot be verified with this server's keys or algorithms")
	default:
		return authFailed("the token is invalid")
	}
}

// Authenticator checks handshakes for the adapter. With Required (`--auth
// jwt`) every connection needs a valid token; without (open mode with a
// secret or JWKS configured) a token is optional, but one that is present
// must be valid.
type Authenticator struct {
	Verifier *Verifier
	Required bool
}

// Authenticate implements socketadapter.Authenticator. The token comes from
// auth.token, an `Authorization: Bearer` header or the token query
// parameter; the identity from its claims: sub → uid, email, name →
// displayName, picture → photoURL, and admin.
func (a Authenticator) Authenticate(ctx context.Context, h socketadapter.Handshake) (socketadapter.Identity, error) {
	token, err := tokenOf(h)
	if err != nil {
		return socketadapter.Identity{}, err
	}
	if token == "" {
		if a.Required {
			return socketadapter.Identity{}, authFailed("a token is required (auth.token, an Authorization: Bearer header or the token query parameter)")
		}
		return socketadapter.Identity{}, nil
	}
	c, err := a.Verifier.Verify(ctx, token)
	if err != nil {
		return socketadapter.Identity{}, err
	}
	p := domain.UserProfile{UID: c.Subject, Email: c.Email, DisplayName: c.Name}
	if c.Picture != "" && domain.CheckHTTPURL("picture", c.Picture) == nil {
		p.PhotoURL = c.Picture
	}
	return socketadapter.Identity{UserID: c.Subject, Profile: &p, Admin: c.IsAdmin()}, nil
}

// tokenOf finds the handshake's token. Two different tokens are refused.
func tokenOf(h socketadapter.Handshake) (string, error) {
	var found []string
	if v, ok := h.Auth["token"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return "", authFailed("auth.token must be a string")
		}
		found = append(found, s)
	}
	if v := h.Header.Get("Authorization"); v != "" {
		scheme, tok, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", authFailed("the Authorization header must be Bearer <token>")
		}
		found = append(found, strings.TrimSpace(tok))
	}
	if v := h.Query.Get("token"); v != "" {
		found = append(found, v)
	}
	token := ""
	for _, t := range found {
		if t == "" {
			continue
		}
		if token != "" && t != token {
			return "", authFailed("the handshake carries two different tokens")
		}
		token = t
	}
	return token, nil
}

// MintOptions describe a development token.
type MintOptions struct {
	UID, Email, Name string
	Admin            bool
	TTL              time.Duration
	Issuer, Audience string
	Now              time.Time
}

// Mint signs an HS256 token with secret for development and tests.
func Mint(secret []byte, o MintOptions) (string, error) {
	if len(secret) < 32 {
		return "", errors.New("jwt: the secret must be at least 32 bytes")
	}
	if err := domain.CheckID("uid", o.UID); err != nil {
		return "", err
	}
	if o.TTL <= 0 {
		return "", errors.New("jwt: the ttl must be positive")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: o.UID, IssuedAt: jwt.NewNumericDate(o.Now), ExpiresAt: jwt.NewNumericDate(o.Now.Add(o.TTL)),
			Issuer: o.Issuer,
		},
		Email: o.Email, Name: o.Name, Admin: o.Admin,
	}
	if o.Audience != "" {
		c.Audience = jwt.ClaimStrings{o.Audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
