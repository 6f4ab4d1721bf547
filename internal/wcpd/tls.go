package wcpd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/wcp360/wcp360/internal/config"
	"github.com/wcp360/wcp360/internal/host/atomicfile"
	"github.com/wcp360/wcp360/internal/host/selfsigned"
)

// selfSignedLifetime is how long the generated API certificate is valid:
// until the panel's own hostname has an ACME certificate (issue 7), which
// then takes its place.
const selfSignedLifetime = 825 * 24 * time.Hour

// listenTLS listens for the HTTPS API on cfg.API.Listen, with the
// configured certificate or a self-signed one generated at the first start.
func listenTLS(cfg config.Config, log *slog.Logger) (net.Listener, error) {
	certFile, keyFile := cfg.API.TLSCert, cfg.API.TLSKey
	if certFile == "" {
		dir := filepath.Join(cfg.Paths.ConfigDir, "tls")
		certFile, keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
		if err := ensureSelfSigned(dir, certFile, keyFile, log); err != nil {
			return nil, err
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("HTTPS API certificate (api.tlsCert %s, api.tlsKey %s): %w", certFile, keyFile, err)
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, fmt.Errorf("HTTPS API on %s (api.listen): %w", cfg.API.Listen, err)
	}
	log.Info("HTTPS API listening", "addr", ln.Addr().String(), "cert", certFile)
	return tls.NewListener(ln, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		NextProtos:   []string{"h2", "http/1.1"},
	}), nil
}

// ensureSelfSigned generates the self-signed pair when there is none.
func ensureSelfSigned(dir, certFile, keyFile string, log *slog.Logger) error {
	if _, err := os.Stat(certFile); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	certPEM, keyPEM, err := selfsigned.New(time.Now(), selfSignedLifetime, host, host, "localhost")
	if err != nil {
		return fmt.Errorf("HTTPS API: self-signed certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("HTTPS API: %w", err)
	}
	// The key first: a certificate without its key is never left behind.
	if err := atomicfile.Write(keyFile, keyPEM, 0o600, 0, 0); err != nil {
		return fmt.Errorf("HTTPS API key: %w", err)
	}
	if err := atomicfile.Write(certFile, certPEM, 0o644, 0, 0); err != nil {
		return fmt.Errorf("HTTPS API certificate: %w", err)
	}
	log.Info("HTTPS API: generated a self-signed certificate until the panel's hostname has its own", "cert", certFile, "host", host)
	return nil
}
