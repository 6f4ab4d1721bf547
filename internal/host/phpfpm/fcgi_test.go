package phpfpm_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// A FastCGI client just big enough to run one PHP script through a socket
// the way nginx does: BEGIN_REQUEST, PARAMS, an empty STDIN, then STDOUT
// and STDERR records until END_REQUEST.

const (
	fcgiBeginRequest = 1
	fcgiEndRequest   = 3
	fcgiParams       = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
	fcgiStderr       = 7
	fcgiResponder    = 1
)

type fcgiResponse struct {
	Header map[string]string
	Body   string
	Stderr string
}

func fcgiRecord(w io.Writer, typ uint8, content []byte) error {
	pad := (8 - len(content)%8) % 8
	h := []byte{1, typ, 0, 1, byte(len(content) >> 8), byte(len(content)), byte(pad), 0}
	if _, err := w.Write(h); err != nil {
		return err
	}
	if _, err := w.Write(content); err != nil {
		return err
	}
	_, err := w.Write(make([]byte, pad))
	return err
}

func fcgiLen(b *bytes.Buffer, n int) {
	if n < 128 {
		b.WriteByte(byte(n))
		return
	}
	_ = binary.Write(b, binary.BigEndian, uint32(n)|1<<31)
}

// fcgiGet runs script (an absolute path) through the FastCGI socket.
func fcgiGet(socket, script string, timeout time.Duration) (*fcgiResponse, error) {
	conn, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	w := bufio.NewWriter(conn)
	if err := fcgiRecord(w, fcgiBeginRequest, []byte{0, fcgiResponder, 0, 0, 0, 0, 0, 0}); err != nil {
		return nil, err
	}
	var params bytes.Buffer
	for _, kv := range [][2]string{
		{"GATEWAY_INTERFACE", "CGI/1.1"}, {"SERVER_SOFTWARE", "wcp360-test"}, {"SERVER_PROTOCOL", "HTTP/1.1"},
		{"REQUEST_METHOD", "GET"}, {"SCRIPT_FILENAME", script}, {"SCRIPT_NAME", "/index.php"},
		{"REQUEST_URI", "/index.php"}, {"QUERY_STRING", ""}, {"SERVER_NAME", "localhost"},
		{"REMOTE_ADDR", "127.0.0.1"}, {"CONTENT_LENGTH", "0"},
	} {
		fcgiLen(&params, len(kv[0]))
		fcgiLen(&params, len(kv[1]))
		params.WriteString(kv[0])
		params.WriteString(kv[1])
	}
	for _, rec := range []struct {
		typ uint8
		c   []byte
	}{{fcgiParams, params.Bytes()}, {fcgiParams, nil}, {fcgiStdin, nil}} {
		if err := fcgiRecord(w, rec.typ, rec.c); err != nil {
			return nil, err
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	r := bufio.NewReader(conn)
	for {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil, fmt.Errorf("read record: %w (stdout so far %q)", err, stdout.String())
		}
		n, pad := int(h[4])<<8|int(h[5]), int(h[6])
		content := make([]byte, n+pad)
		if _, err := io.ReadFull(r, content); err != nil {
			return nil, err
		}
		switch h[1] {
		case fcgiStdout:
			stdout.Write(content[:n])
		case fcgiStderr:
			stderr.Write(content[:n])
		case fcgiEndRequest:
			return parseCGI(stdout.String(), stderr.String())
		}
	}
}

func parseCGI(out, errOut string) (*fcgiResponse, error) {
	head, body, ok := bytes.Cut([]byte(out), []byte("\r\n\r\n"))
	if !ok {
		return nil, fmt.Errorf("no CGI header in %q (stderr %q)", out, errOut)
	}
	resp := &fcgiResponse{Header: map[string]string{}, Body: string(body), Stderr: errOut}
	for l := range bytes.SplitSeq(head, []byte("\r\n")) {
		k, v, _ := bytes.Cut(l, []byte(":"))
		resp.Header[string(bytes.ToLower(k))] = string(bytes.TrimSpace(v))
	}
	return resp, nil
}
