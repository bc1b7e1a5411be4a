package testbed

import (
	"io"
	"net"
	"sync"
)

// SilentServer accepts TCP connections and never answers: a Git host whose
// load balancer takes the connection while the server behind it hangs.
// Whatever a client sends is read and dropped, so its writes never block.
type SilentServer struct {
	// Addr is host:port on loopback.
	Addr string

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// StartSilentServer listens until the test ends.
func StartSilentServer(t TB) *SilentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &SilentServer{Addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				conn.Close()
				return
			}
			s.conns = append(s.conns, conn)
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(io.Discard, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		s.closed = true
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	})
	return s
}

// Accepted counts the connections taken so far.
func (s *SilentServer) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
