package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Prefixes of the opaque tokens: fixed, so secret scanners can recognise a
// leaked token, and distinct, so one kind is never taken for the other.
const (
	APITokenPrefix     = "wcp_"
	RefreshTokenPrefix = "wcpr_"
)

const (
	idBytes     = 8  // 16 hex characters
	secretBytes = 32 // 43 base64url characters
	idLen       = 2 * idBytes
	secretLen   = 43
)

var secretEncoding = base64.RawURLEncoding.Strict()

// opaque is a parsed refresh or API token: <prefix><id>_<secret>.
type opaque struct {
	id     string
	secret []byte
}

// hash is what the store keeps: the SHA-256 of the secret.
func (o opaque) hash() []byte {
	h := sha256.Sum256(o.secret)
	return h[:]
}

func (o opaque) format(prefix string) string {
	return prefix + o.id + "_" + secretEncoding.EncodeToString(o.secret)
}

func newOpaque() (opaque, error) {
	b := make([]byte, idBytes+secretBytes)
	if _, err := rand.Read(b); err != nil {
		return opaque{}, fmt.Errorf("token: random: %w", err)
	}
	return opaque{id: hex.EncodeToString(b[:idBytes]), secret: b[idBytes:]}, nil
}

// parseOpaque parses <prefix><16 lowercase hex>_<43 base64url>. The secret
// may itself contain "_": the id has a fixed length.
func parseOpaque(prefix, s string) (opaque, error) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return opaque{}, fmt.Errorf("%w: does not start with %q", ErrMalformed, prefix)
	}
	if len(rest) != idLen+1+secretLen || rest[idLen] != '_' {
		return opaque{}, fmt.Errorf("%w: want %s<%d hex digits>_<%d base64url characters>", ErrMalformed, prefix, idLen, secretLen)
	}
	id, enc := rest[:idLen], rest[idLen+1:]
	for i := range len(id) {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return opaque{}, fmt.Errorf("%w: the id is not lowercase hex", ErrMalformed)
		}
	}
	secret, err := secretEncoding.DecodeString(enc)
	if err != nil || len(secret) != secretBytes {
		return opaque{}, fmt.Errorf("%w: the secret is not %d bytes of base64url", ErrMalformed, secretBytes)
	}
	return opaque{id: id, secret: secret}, nil
}

// ParseAPIToken splits an API token into its id (which may be logged and
// shown) and its secret, checking the shape only. Errors wrap ErrMalformed.
func ParseAPIToken(s string) (id string, secret []byte, err error) {
	o, err := parseOpaque(APITokenPrefix, s)
	return o.id, o.secret, err
}

// ParseRefreshToken does what ParseAPIToken does for a refresh token.
func ParseRefreshToken(s string) (id string, secret []byte, err error) {
	o, err := parseOpaque(RefreshTokenPrefix, s)
	return o.id, o.secret, err
}
