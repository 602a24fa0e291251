// Package tlsreload serves a certificate pair from files that may be
// renewed while the server runs (certbot, cert-manager, a Kubernetes
// Secret's symlink swap): each handshake looks at the files' stamps, and
// a changed pair is loaded for that handshake and the ones after it.
package tlsreload

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// stamp tells whether a file changed: a renewal writes a new file, so its
// modification time or size moves (a Secret's swap points the name at a
// new file, which os.Stat follows).
type stamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// Reloader hands out the current certificate; tls.Config.GetCertificate
// is its method.
type Reloader struct {
	certFile, keyFile string
	// onError is told of a changed pair that does not load (a renewal
	// half written, a key that does not match); the old pair stays.
	onError func(error)

	mu     sync.Mutex
	cert   *tls.Certificate
	loaded stamp // the stamp of cert
	failed stamp // the last stamp that did not load, tried again only when it moves
}

// New loads the pair once; it fails when the pair does not load.
func New(certFile, keyFile string, onError func(error)) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, onError: onError}
	st, err := r.stat()
	if err != nil {
		return nil, err
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load %s and %s: %w", certFile, keyFile, err)
	}
	r.cert, r.loaded = &c, st
	return r, nil
}

func (r *Reloader) stat() (stamp, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return stamp{}, err
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return stamp{}, err
	}
	return stamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

// GetCertificate returns the pair on disk when it changed and loads, else
// the one served so far. Two stats per handshake are the whole cost of
// never needing a restart for a renewal.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.stat()
	if err != nil || st == r.loaded || st == r.failed {
		// A file missing for a moment (being replaced) keeps the old pair.
		return r.cert, nil
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.failed = st
		if r.onError != nil {
			r.onError(fmt.Errorf("renewed certificate not loaded, still serving the previous one: %w", err))
		}
		return r.cert, nil
	}
	r.cert, r.loaded, r.failed = &c, st, stamp{}
	return r.cert, nil
}

// Config is a server configuration serving the reloaded pair with HTTP/2
// (ALPN h2) and HTTP/1.1.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
		MinVersion:     tls.VersionTLS12,
	}
}
