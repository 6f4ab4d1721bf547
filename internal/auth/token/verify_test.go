package token_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/auth/token"
	"github.com/wcp360/wcp360/internal/store"
)

// goodClaims are the claims the service writes for alice at t0.
func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": token.DefaultIssuer, "aud": []string{token.DefaultAudience}, "sub": "alice",
		"exp": t0.Add(15 * time.Minute).Unix(), "nbf": t0.Unix(), "iat": t0.Unix(), "jti": "j1",
		"role": "tenant", "tenant": "acme", "scopes": []string{"read", "write"},
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func with(c jwt.MapClaims, edit func(jwt.MapClaims)) jwt.MapClaims {
	edit(c)
	return c
}

func TestVerifyAcceptsItsOwnTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, token.Config{})
	raw, exp, err := e.svc.IssueAccessToken(store.Principal{Name: "alice", Role: store.RoleTenant, Tenant: "acme"}, "domains:write")
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(t0.Add(token.DefaultAccessTTL)) {
		t.Fatalf("exp = %v", exp)
	}
	id, err := e.svc.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := token.Identity{Principal: "alice", Role: "tenant", Tenant: "acme", Scopes: []string{"domains:write"},
		Kind: token.KindAccess, TokenID: id.TokenID, ExpiresAt: exp}
	if diff := cmp.Diff(want, id); diff != "" || id.TokenID == "" {
		t.Fatalf("identity (-want +got):\n%s", diff)
	}
	// A hand-made token with the same claims, signed by the key, is accepted too.
	if _, err := e.svc.Verify(sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, goodClaims())); err != nil {
		t.Fatal(err)
	}
	// Leeway: 29 s of skew either way is tolerated, 31 s is not.
	for _, c := range []struct {
		at   time.Time
		want error
	}{
		{t0.Add(-29 * time.Second), nil},
		{t0.Add(-31 * time.Second), token.ErrNotYetValid},
		{exp.Add(29 * time.Second), nil},
		{exp.Add(31 * time.Second), token.ErrExpired},
	} {
		e.clock.Set(c.at)
		_, err := e.svc.Verify(raw)
		if c.want == nil && err != nil {
			t.Errorf("at %v: %v", c.at, err)
		} else if c.want != nil {
			wantRefusal(t, err, c.want)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, token.Config{})
	pub := e.key.priv.Public().(ed25519.PublicKey)
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	good := sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, goodClaims())
	parts := strings.Split(good, ".")
	_, otherKey, _ := ed25519.GenerateKey(nil)

	// tampered: alice's payload turned into an admin's, signature kept.
	payload, _ := json.Marshal(with(goodClaims(), func(c jwt.MapClaims) { c["role"] = "admin"; delete(c, "tenant") }))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]

	for name, c := range map[string]struct {
		raw  string
		want error
	}{
		"alg none": {sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, e.key.id, goodClaims()), token.ErrAlgorithm},
		"alg none, no signature part": {parts[0][:0] + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
			token.ErrAlgorithm},
		"HS256 keyed with the raw public key": {sign(t, jwt.SigningMethodHS256, []byte(pub), e.key.id, goodClaims()), token.ErrAlgorithm},
		"HS256 keyed with the PEM public key": {sign(t, jwt.SigningMethodHS256, pubPEM, e.key.id, goodClaims()), token.ErrAlgorithm},
		"unknown alg": {base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XX99","kid":"`+e.key.id+`"}`)) + "." + parts[1] + "." + parts[2],
			token.ErrAlgorithm},
		"expired":       {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Minute).Unix() })), token.ErrExpired},
		"not yet valid": {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { c["nbf"] = t0.Add(time.Minute).Unix() })), token.ErrNotYetValid},
		"issued in the future": {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { c["iat"] = t0.Add(time.Minute).Unix() })),
			token.ErrNotYetValid},
		"wrong issuer":                        {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { c["iss"] = "evil" })), token.ErrIssuer},
		"no issuer":                           {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { delete(c, "iss") })), token.ErrClaims},
		"wrong audience":                      {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { c["aud"] = "other-api" })), token.ErrAudience},
		"no audience":                         {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { delete(c, "aud") })), token.ErrClaims},
		"tampered payload":                    {tampered, token.ErrSignature},
		"signed by another key under our kid": {sign(t, jwt.SigningMethodEdDSA, otherKey, e.key.id, goodClaims()), token.ErrSignature},
		"unknown kid":                         {sign(t, jwt.SigningMethodEdDSA, e.key.priv, "20250101T000000Z-deadbeef", goodClaims()), token.ErrUnknownKey},
		"no kid":                              {sign(t, jwt.SigningMethodEdDSA, e.key.priv, "", goodClaims()), token.ErrUnknownKey},
		"no exp":                              {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { delete(c, "exp") })), token.ErrClaims},
		"no nbf":                              {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { delete(c, "nbf") })), token.ErrClaims},
		"no iat":                              {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { delete(c, "iat") })), token.ErrClaims},
		"no sub":                              {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { delete(c, "sub") })), token.ErrClaims},
		"no jti":                              {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { delete(c, "jti") })), token.ErrClaims},
		"unknown role":                        {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { c["role"] = "root" })), token.ErrClaims},
		"tenant role without tenant": {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { delete(c, "tenant") })),
			token.ErrClaims},
		"unknown scope": {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { c["scopes"] = []string{"sudo"} })), token.ErrClaims},
		"empty scopes":  {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { c["scopes"] = []string{} })), token.ErrClaims},
		"exp of the wrong type": {sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, with(goodClaims(), func(c jwt.MapClaims) { c["exp"] = "tomorrow" })),
			token.ErrMalformed},
		"empty":            {"", token.ErrMalformed},
		"two segments":     {parts[0] + "." + parts[1], token.ErrMalformed},
		"not base64":       {parts[0] + ".!!!." + parts[2], token.ErrMalformed},
		"padded signature": {good + "=", token.ErrMalformed},
		"too long":         {good + strings.Repeat("A", 9000), token.ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.svc.Verify(c.raw)
			wantRefusal(t, err, c.want)
		})
	}
}

func TestVerifyOtherIssuerAndAudience(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, token.Config{Issuer: "https://panel.example", Audience: "panel"})
	raw, _, err := e.svc.IssueAccessToken(store.Principal{Name: "root", Role: store.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Verify(raw); err != nil {
		t.Fatal(err)
	}
	// The default issuer's token is not this one's.
	wantRefusal(t, verifyErr(e.svc, sign(t, jwt.SigningMethodEdDSA, e.key.priv, e.key.id, goodClaims())), token.ErrIssuer)
}

func verifyErr(s *token.Service, raw string) error {
	_, err := s.Verify(raw)
	return err
}

func TestRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, token.Config{})
	admin := store.Principal{Name: "root", Role: store.RoleAdmin}
	kidOf := func(raw string) string {
		tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Header["kid"].(string)
	}
	before, _, err := e.svc.IssueAccessToken(admin)
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(before) != e.key.id {
		t.Fatalf("kid = %q, want %q", kidOf(before), e.key.id)
	}

	e.clock.Advance(5 * time.Minute)
	kid, pruned, err := e.svc.RotateKeys()
	if err != nil || len(pruned) != 0 {
		t.Fatalf("RotateKeys = %q, %v, %v", kid, pruned, err)
	}
	after, _, err := e.svc.IssueAccessToken(admin)
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(after) != kid || kid == e.key.id {
		t.Fatalf("a token after rotation has kid %q, want the new %q", kidOf(after), kid)
	}
	for _, raw := range []string{before, after} {
		if _, err := e.svc.Verify(raw); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
	}
	// A ring loaded from the directory (a restart) agrees.
	reloaded, err := token.LoadKeyRing(e.ring.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if got := reloaded.Keys(); len(got) != 2 || got[1].ID != kid || !got[0].RetiredAt.Equal(got[1].CreatedAt) {
		t.Fatalf("keys on disk = %+v", got)
	}

	// Rotating again before the first key's tokens have expired keeps it.
	e.clock.Advance(10 * time.Minute)
	_, pruned, err = e.svc.RotateKeys()
	if err != nil || len(pruned) != 0 {
		t.Fatalf("second rotation pruned %v, %v", pruned, err)
	}
	if _, err := e.svc.Verify(before); err != nil {
		t.Fatalf("a valid token after a second rotation: %v", err)
	}
	// Once the first key has been retired longer than a token lives, it goes.
	e.clock.Advance(token.DefaultAccessTTL)
	_, pruned, err = e.svc.RotateKeys()
	if err != nil || !cmp.Equal(pruned, []string{e.key.id}) {
		t.Fatalf("third rotation pruned %v, %v; want %s", pruned, err, e.key.id)
	}
	if len(e.ring.Keys()) != 3 {
		t.Fatalf("keys = %+v", e.ring.Keys())
	}
	// A token it signed no longer verifies, even on a clock that would
	// accept its times.
	e.clock.Set(t0.Add(6 * time.Minute))
	wantRefusal(t, verifyErr(e.svc, before), token.ErrUnknownKey)
	if _, err := e.svc.Verify(after); err != nil {
		t.Fatalf("a token of a kept key: %v", err)
	}
}
