package token_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wcp360/wcp360/internal/auth/token"
)

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz")

// fuzzService verifies with the fixed key at t0 and no store.
func fuzzService(tb testing.TB) (*token.Service, fixedKey) {
	tb.Helper()
	dir, key := keyDir(tb, t0.Add(-time.Hour))
	ring, err := token.LoadKeyRing(dir)
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := token.New(ring, noStore{}, token.Config{Clock: func() time.Time { return t0.Add(time.Minute) }})
	if err != nil {
		tb.Fatal(err)
	}
	return svc, key
}

// verifySeeds are tokens of every shape Verify meets; Ed25519 signatures
// are deterministic, so they are the same on every run.
func verifySeeds(t *testing.T, key fixedKey) map[string]string {
	good := sign(t, jwt.SigningMethodEdDSA, key.priv, key.id, goodClaims())
	parts := strings.Split(good, ".")
	payload, _ := json.Marshal(with(goodClaims(), func(c jwt.MapClaims) { c["role"] = "admin"; delete(c, "tenant") }))
	pub := key.priv.Public().(ed25519.PublicKey)
	return map[string]string{
		"valid":    good,
		"alg-none": sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, key.id, goodClaims()),
		"hs256":    sign(t, jwt.SigningMethodHS256, []byte(pub), key.id, goodClaims()),
		"expired":  sign(t, jwt.SigningMethodEdDSA, key.priv, key.id, with(goodClaims(), func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Hour).Unix() })),
		"issuer":   sign(t, jwt.SigningMethodEdDSA, key.priv, key.id, with(goodClaims(), func(c jwt.MapClaims) { c["iss"] = "evil" })),
		"reseller": sign(t, jwt.SigningMethodEdDSA, key.priv, key.id, with(goodClaims(), func(c jwt.MapClaims) { c["role"] = "reseller"; delete(c, "tenant"); c["tenants"] = []string{"a", "b"} })),
		"tampered": parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2],
		"no-kid":   sign(t, jwt.SigningMethodEdDSA, key.priv, "", goodClaims()),
		"empty":    "",
		"dots":     "..",
		"garbage":  "eyJ.eyJ.x",
	}
}

func apiTokenSeeds() map[string]string {
	secret := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("\xfb\xff", 16)))
	return map[string]string{
		"valid":          "wcp_0123456789abcdef_" + secret,
		"underscores":    "wcp_0123456789abcdef_" + strings.Repeat("_", 43),
		"refresh":        "wcpr_0123456789abcdef_" + secret,
		"upper-id":       "wcp_0123456789ABCDEF_" + secret,
		"short":          "wcp_0123_abc",
		"padded":         "wcp_0123456789abcdef_" + secret + "=",
		"non-zero-tail":  "wcp_0123456789abcdef_" + secret[:42] + "B",
		"empty":          "",
		"prefix-only":    "wcp_",
		"jwt":            "eyJhbGciOiJFZERTQSJ9.e30.",
		"multibyte-tail": "wcp_0123456789abcdef_" + secret[:41] + "é",
	}
}

func writeCorpus(t *testing.T, target string, seeds map[string]string) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range seeds {
		data := fmt.Sprintf("go test fuzz v1\nstring(%s)\n", strconv.Quote(s))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSeedCorpus rewrites the committed seed corpus with -update.
func TestSeedCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	_, key := fuzzService(t)
	writeCorpus(t, "FuzzVerify", verifySeeds(t, key))
	writeCorpus(t, "FuzzParseAPIToken", apiTokenSeeds())
}

// FuzzVerify: Verify never panics, every refusal is classified, and what
// it accepts is really an EdDSA token signed by the ring's key with claims
// that make sense.
func FuzzVerify(f *testing.F) {
	svc, key := fuzzService(f)
	pub := key.priv.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := svc.Verify(raw)
		if err != nil {
			if !errors.Is(err, token.ErrInvalidToken) {
				t.Fatalf("an unclassified refusal: %v", err)
			}
			return
		}
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %q: not three segments", raw)
		}
		var header struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
		}
		h, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil || json.Unmarshal(h, &header) != nil || header.Alg != "EdDSA" || header.Kid != key.id {
			t.Fatalf("accepted %q with header %s", raw, h)
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
			t.Fatalf("accepted %q without a valid signature", raw)
		}
		if id.Principal == "" || len(id.Scopes) == 0 || id.Kind != token.KindAccess {
			t.Fatalf("accepted %q as %+v", raw, id)
		}
	})
}

// FuzzParseAPIToken: the parser accepts exactly what formats back to the
// same string, and refuses with ErrMalformed.
func FuzzParseAPIToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := token.ParseAPIToken(s)
		if err != nil {
			if !errors.Is(err, token.ErrMalformed) {
				t.Fatalf("ParseAPIToken(%q) = %v, want ErrMalformed", s, err)
			}
		} else if again := token.APITokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret); again != s || len(secret) != 32 {
			t.Fatalf("ParseAPIToken(%q) = %q, %x, which formats as %q", s, id, secret, again)
		}
		_, _, rerr := token.ParseRefreshToken(s)
		if err == nil && rerr == nil {
			t.Fatalf("%q parses as both an API and a refresh token", s)
		}
	})
}

// TestVerifySeeds: the seed corpus reaches both the accepting and the
// refusing paths.
func TestVerifySeeds(t *testing.T) {
	t.Parallel()
	svc, key := fuzzService(t)
	for name, raw := range verifySeeds(t, key) {
		_, err := svc.Verify(raw)
		if accept := name == "valid" || name == "reseller"; accept != (err == nil) {
			t.Errorf("seed %s: %v", name, err)
		}
	}
}
