// Package acme obtains certificates from an RFC 8555 certificate authority
// (Let's Encrypt, its staging, or any ACME CA) with go-acme/lego v5, over
// HTTP-01 served by nginx, or DNS-01 through a DNS provider.
//
// # Accounts
//
// A Client talks to one ACME directory with one account. The account's key
// and registration live under Options.StateDir, in
// accounts/<first 16 hex digits of the SHA-256 of the directory URL>/:
//
//	account.key   ECDSA P-256 key, PKCS #8 PEM, root 0600
//	account.json  the directory URL, contact email and account URL
//
// The account directory is 0700; StateDir itself is created 0755 when
// missing and never tightened, because nginx's challenge directory
// (/var/lib/wcp360/acme/challenges by default) lies inside it and nginx's
// workers must traverse it. The account is registered on the first Obtain
// (with external account binding when Options.EAB is set: a key id and a
// base64url HMAC key from the CA) and reused from then on, also by a new
// Client over the same StateDir. When the CA no longer knows the account
// (accountDoesNotExist), the registration is dropped and made again once.
//
// # HTTP-01 through nginx
//
// Every nginx site serves /.well-known/acme-challenge/ from one directory
// (internal/host/nginx's Options.ACMEDir). The client's challenge provider
// writes the key authorization to <ChallengeDir>/<token> (0644, atomically,
// so nginx never serves half a token) before telling the CA to validate,
// and removes it afterwards, whatever the outcome. There is no extra
// listener and nothing to reload.
//
// # DNS-01
//
// Options.DNS names one of a curated list of lego's DNS providers
// (DNSProviders: rfc2136, exec, httpreq, cloudflare, route53, pdns,
// hetzner, digitalocean) and its settings under lego's names. Each is made
// from its lego Config, never from the process environment; a setting the
// provider does not know is an error (CheckDNSSettings), and no error shows
// a setting's value. exec is lego's protocol ("present|cleanup <fqdn>
// <value>") run through internal/cmdrun, with the settings as the
// program's only environment. ParseEnvFile and LoadEnvFile read settings
// from a KEY=value file that must be 0600. DNS.Resolvers become lego's
// resolver, which is one for the process (dns01.SetDefaultClient).
//
// With a provider, Obtain proves wildcard names (which only DNS-01 can)
// over DNS-01 and the others over HTTP-01 (lego prefers HTTP-01 where the
// CA offers both); DNS.ForAll and ObtainWith(ChallengeDNS01) prove every
// name over DNS-01 (a second lego client over the same account, DNS-01
// only). Without one, names that need DNS-01 are ErrNoDNS01.
//
// # Obtaining
//
// Obtain orders one certificate for all the names given (the first is the
// subject's common name when it fits), solves a challenge for each and returns
// the chain (leaf first) and a new ECDSA P-256 key, both PEM. WriteFiles
// lands them atomically, key first, root 0600. An error from the CA is an
// *Error whose Problem carries the CA's problem document (type, detail,
// subproblems) and, when rate limited, Retry-After.
//
// # Renewal
//
// RenewAt is the pure renewal decision: at two thirds of the lifetime,
// moved earlier by up to a tenth of the lifetime by a caller-supplied
// jitter, or earlier still when the CA's renewal information (ARI, RFC
// 9773) suggests a window that starts before that. Client.RenewalInfo
// fetches ARI (lego v5 supports it); ErrNoARI means the CA does not offer
// it (Debian's pebble 2.4 does not).
//
// # Logging
//
// lego logs through its own package-level slog logger (lego/log.SetDefault);
// this package does not change it: the daemon decides in cmd/.
//
// # Tests
//
// The tests run Debian's pebble in a sandbox with PEBBLE_VA_NOSLEEP=1 and
// its HTTP-01 port pointed at a real nginx that serves the challenge
// directory; the test names resolve to 127.0.0.1 through the sandbox's
// /etc/hosts. The DNS-01 tests add pebble-challtestsrv as pebble's DNS
// server and lego's resolver, its TXT records set by an exec hook.
package acme
