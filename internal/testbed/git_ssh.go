package testbed

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// GitSSH is an SSH server that runs the real git-upload-pack and
// git-receive-pack for one authorised client key, over bare repositories
// under a root folder.
type GitSSH struct {
	addr      string
	root      string
	hostKey   ssh.Signer
	clientPEM []byte
	wg        sync.WaitGroup
}

// StartGitSSH serves the bare repositories under root.
func StartGitSSH(t TB, root string) *GitSSH {
	t.Helper()
	git := Git(t)
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("host key: %v", err)
	}
	hostKey, _ := ssh.NewSignerFromKey(hostPriv)
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("client key: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "certsync test client")
	if err != nil {
		t.Fatalf("client key: %v", err)
	}
	authorised, _ := ssh.NewPublicKey(clientPub)
	g := &GitSSH{root: root, hostKey: hostKey, clientPEM: pem.EncodeToMemory(block)}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(authorised.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key")
		},
	}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	g.addr = ln.Addr().String()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				g.serve(conn, cfg, git)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); g.wg.Wait() })
	return g
}

func (g *GitSSH) serve(conn net.Conn, cfg *ssh.ServerConfig, git string) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			return
		}
		go g.session(ch, requests, git)
	}
}

// session runs one "exec git-upload-pack '/repo.git'" request.
func (g *GitSSH) session(ch ssh.Channel, requests <-chan *ssh.Request, git string) {
	defer ch.Close()
	for req := range requests {
		if req.Type != "exec" || len(req.Payload) < 4 {
			req.Reply(false, nil)
			continue
		}
		n := binary.BigEndian.Uint32(req.Payload)
		command := string(req.Payload[4 : 4+n])
		service, arg, _ := strings.Cut(command, " ")
		if service != "git-upload-pack" && service != "git-receive-pack" {
			req.Reply(false, nil)
			return
		}
		repo := filepath.Join(g.root, filepath.Clean("/"+strings.Trim(arg, "'\"")))
		req.Reply(true, nil)
		cmd := exec.Command(git, strings.TrimPrefix(service, "git-"), repo)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
		}
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}

// URL is the ssh:// clone URL of a repository.
func (g *GitSSH) URL(repo string) string { return "ssh://git@" + g.addr + "/" + repo + ".git" }

// ClientKeyPEM is the private key the server authorises (OpenSSH format).
func (g *GitSSH) ClientKeyPEM() []byte { return g.clientPEM }

// KnownHosts is a known_hosts line for this server.
func (g *GitSSH) KnownHosts() []byte {
	host, port, _ := net.SplitHostPort(g.addr)
	return []byte(fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(g.hostKey.PublicKey())))
}
