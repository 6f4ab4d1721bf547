package api

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"golang.org/x/sys/unix"
)

// Peer is the other end of a request's connection.
type Peer struct {
	// Unix: the request came over the local unix socket, and UID, GID and
	// PID are the connecting process's, as the kernel saw them when it
	// connected (SO_PEERCRED: nothing the client says).
	Unix          bool
	UID, GID, PID int
	// Addr is the remote address of a TCP connection.
	Addr string
}

// Root reports whether the peer is root on the local socket.
func (p Peer) Root() bool { return p.Unix && p.UID == 0 }

type peerKey struct{}

// ConnContext is the http.Server ConnContext that records each
// connection's Peer for the API's handlers. A unix connection whose
// credentials cannot be read gets UID -1: refused.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	p := Peer{Addr: c.RemoteAddr().String(), UID: -1, GID: -1, PID: -1}
	if uc, ok := c.(*net.UnixConn); ok {
		p.Unix = true
		if raw, err := uc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil { //nolint:gosec // a descriptor fits an int
					p.UID, p.GID, p.PID = int(cred.Uid), int(cred.Gid), int(cred.Pid)
				}
			})
		}
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the request's Peer, ok false when the server records
// none (no ConnContext).
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// localRootOnly refuses every request that comes over the unix socket from
// anyone but root. The socket's mode already keeps others out; this holds
// when someone loosens it, and names who was refused in the log.
func (s *Server) localRootOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := PeerFrom(r.Context()); ok && p.Unix && !p.Root() {
			s.log.Warn("refused a non-root peer on the local socket", "uid", p.UID, "pid", p.PID, "path", r.URL.Path)
			writeProblem(w, http.StatusForbidden, "Root only",
				fmt.Sprintf("wcpd's local socket serves root only (this process runs as uid %d); other users use the HTTPS API with a token", p.UID), nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}
