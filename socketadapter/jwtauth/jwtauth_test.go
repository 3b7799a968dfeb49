package jwtauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/socketadapter"
	"github.com/auraos/realtime/socketadapter/jwtauth"
)

var secret = []byte("0123456789abcdef0123456789abcdef-test-secret")

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwks serves a JSON Web Key Set whose keys can change (rotation).
type jwks struct {
	mu   sync.Mutex
	keys []map[string]string
	hits int
}

func (j *jwks) set(keys ...map[string]string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keys = keys
}

func (j *jwks) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.hits++
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": j.keys})
}

func rsaJWK(kid string, k *rsa.PrivateKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PrivateKey) map[string]string {
	return map[string]string{"kty": "EC", "kid": kid, "alg": "ES256", "use": "sig", "crv": "P-256",
		"x": b64(k.X.FillBytes(make([]byte, 32))), "y": b64(k.Y.FillBytes(make([]byte, 32)))}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": "user_123", "email": "u@example.com", "name": "John Doe", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"iss": "https://issuer.example", "aud": "auraos"}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestBadTokensAreRefused(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys := &jwks{}
	keys.set(rsaJWK("r1", rsaKey), ecJWK("e1", ecKey))
	ts := httptest.NewServer(keys)
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := jwtauth.New(ctx, jwtauth.Config{Secret: secret, JWKSURL: ts.URL, Issuer: "https://issuer.example", Audience: "auraos"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cases := []struct {
		name  string
		token string
		want  string // "" for valid, else a word of the error message
	}{
		{"valid HS256", sign(t, jwt.SigningMethodHS256, secret, "", claims(nil)), ""},
		{"valid RS256", sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(nil)), ""},
		{"valid ES256", sign(t, jwt.SigningMethodES256, ecKey, "e1", claims(nil)), ""},
		{"malformed", "not.a.token", "malformed"},
		{"garbage", "garbage", "malformed"},
		{"forged HS256", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-1234"), "", claims(nil)), "signature"},
		{"forged RS256", sign(t, jwt.SigningMethodRS256, otherRSA, "r1", claims(nil)), "signature"},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, otherRSA, "nope", claims(nil)), "verified"},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })), "expired"},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { delete(c, "exp") })), "exp"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), "not valid yet"},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), "not valid yet"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), "issuer"},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" })), "audience"},
		{"no subject", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { delete(c, "sub") })), "subject"},
		{"HS512 not allowed", sign(t, jwt.SigningMethodHS512, secret, "", claims(nil)), "verified"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims(nil)), "verified"},
	}
	for _, c := range cases {
		_, err := v.Verify(ctx, c.token)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if domain.ErrorCode(err) != domain.EAUTH || !strings.Contains(domain.ErrorMessage(err), c.want) {
			t.Errorf("%s: %v, want AUTH_FAILED mentioning %q", c.name, err, c.want)
		}
		if strings.Contains(domain.ErrorMessage(err), c.token) || (len(c.token) > 20 && strings.Contains(err.Error(), c.token)) {
			t.Errorf("%s: the error repeats the token", c.name)
		}
	}
}

// An HS256 token signed with the RSA public key must not pass: the
// algorithm decides the key, never the other way round.
func TestAlgorithmConfusionIsRefused(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys := &jwks{}
	keys.set(rsaJWK("r1", rsaKey))
	ts := httptest.NewServer(keys)
	defer ts.Close()
	v, err := jwtauth.New(t.Context(), jwtauth.Config{JWKSURL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	pub := []byte(b64(rsaKey.N.Bytes()))
	tok := sign(t, jwt.SigningMethodHS256, pub, "r1", claims(nil))
	if _, err := v.Verify(t.Context(), tok); domain.ErrorCode(err) != domain.EAUTH {
		t.Fatalf("HS256 token against a JWKS-only verifier: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	old, _ := rsa.GenerateKey(rand.Reader, 2048)
	next, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys := &jwks{}
	keys.set(rsaJWK("k1", old))
	ts := httptest.NewServer(keys)
	defer ts.Close()
	v, err := jwtauth.New(t.Context(), jwtauth.Config{JWKSURL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, old, "k1", claims(nil))); err != nil {
		t.Fatalf("old key: %v", err)
	}
	keys.set(rsaJWK("k1", old), rsaJWK("k2", next)) // the issuer rotates
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, next, "k2", claims(nil))); err != nil {
		t.Fatalf("token of the rotated-in key: %v", err)
	}
	keys.mu.Lock()
	hits := keys.hits
	keys.mu.Unlock()
	if hits < 2 {
		t.Fatalf("the JWKS was fetched %d times; an unknown kid must refresh it", hits)
	}
}

func handshake(auth map[string]any, header, query string) socketadapter.Handshake {
	h := socketadapter.Handshake{Auth: auth, Header: http.Header{}, Query: url.Values{}}
	if header != "" {
		h.Header.Set("Authorization", header)
	}
	if query != "" {
		h.Query.Set("token", query)
	}
	return h
}

func TestAuthenticatorFindsTheTokenAndTheIdentity(t *testing.T) {
	t.Parallel()
	v, err := jwtauth.New(t.Context(), jwtauth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	admin := sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
		c["roles"] = []string{"reader", "admin"}
		c["picture"] = "https://example.com/a.png"
	}))
	plain := sign(t, jwt.SigningMethodHS256, secret, "", claims(nil))
	required := jwtauth.Authenticator{Verifier: v, Required: true}
	open := jwtauth.Authenticator{Verifier: v}
	for _, h := range []socketadapter.Handshake{
		handshake(map[string]any{"token": admin}, "", ""),
		handshake(nil, "Bearer "+admin, ""),
		handshake(nil, "", admin),
		handshake(map[string]any{"token": admin}, "Bearer "+admin, admin),
	} {
		id, err := required.Authenticate(t.Context(), h)
		if err != nil || id.UserID != "user_123" || !id.Admin || id.Profile.DisplayName != "John Doe" || id.Profile.PhotoURL != "https://example.com/a.png" {
			t.Fatalf("identity %+v %v", id, err)
		}
	}
	if id, err := required.Authenticate(t.Context(), handshake(map[string]any{"token": plain}, "", "")); err != nil || id.Admin {
		t.Fatalf("plain token: %+v %v", id, err)
	}
	refused := []socketadapter.Handshake{
		handshake(nil, "", ""),
		handshake(map[string]any{"token": 42}, "", ""),
		handshake(nil, "Basic abc", ""),
		handshake(map[string]any{"token": admin}, "Bearer "+plain, ""),
	}
	for i, h := range refused {
		if _, err := required.Authenticate(t.Context(), h); domain.ErrorCode(err) != domain.EAUTH {
			t.Errorf("handshake %d: %v", i, err)
		}
	}
	// Open mode: no token is anonymous; a bad token is still refused.
	if id, err := open.Authenticate(t.Context(), handshake(nil, "", "")); err != nil || id.UserID != "" {
		t.Fatalf("open mode without a token: %+v %v", id, err)
	}
	if _, err := open.Authenticate(t.Context(), handshake(map[string]any{"token": "bad"}, "", "")); domain.ErrorCode(err) != domain.EAUTH {
		t.Fatalf("open mode with a bad token: %v", err)
	}
}

func TestMint(t *testing.T) {
	t.Parallel()
	tok, err := jwtauth.Mint(secret, jwtauth.MintOptions{UID: "u1", Email: "u1@x.io", Name: "U One", Admin: true, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := jwtauth.New(t.Context(), jwtauth.Config{Secret: secret})
	c, err := v.Verify(t.Context(), tok)
	if err != nil || c.Subject != "u1" || !c.IsAdmin() || c.Name != "U One" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := jwtauth.Mint([]byte("short"), jwtauth.MintOptions{UID: "u", TTL: time.Minute}); err == nil {
		t.Fatal("a short secret minted a token")
	}
	if _, err := jwtauth.New(t.Context(), jwtauth.Config{}); err == nil {
		t.Fatal("a verifier without keys was created")
	}
}
