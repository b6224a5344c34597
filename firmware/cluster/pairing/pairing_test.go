package pairing

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
)

func TestPairRoundTripAndSave(t *testing.T) {
	bs, err := Pair([]string{"a", "b", "w"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, ErrNoBundle) {
		t.Fatalf("Load of empty dir: %v, want ErrNoBundle", err)
	}
	if err := bs[1].Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeID != "b" || !bytes.Equal(got.PairKey, bs[0].PairKey) || !got.CACert.Equal(bs[0].CACert) {
		t.Fatalf("loaded bundle differs: %+v", got)
	}
}

func TestPairRejectsBadIDs(t *testing.T) {
	for _, ids := range [][]string{nil, {""}, {"a", "a"}} {
		if _, err := Pair(ids); err == nil {
			t.Errorf("Pair(%q) succeeded", ids)
		}
	}
}

func TestParseBundleRejectsForeignKey(t *testing.T) {
	p1, _ := Pair([]string{"a"})
	p2, _ := Pair([]string{"a"})
	mixed := *p1[0]
	mixed.Key = p2[0].Key
	data, err := mixed.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseBundle(data); err == nil {
		t.Fatal("bundle with a key of another pairing accepted")
	}
	mixed = *p1[0]
	mixed.CACert = p2[0].CACert
	data, _ = mixed.Marshal()
	if _, err := ParseBundle(data); err == nil {
		t.Fatal("bundle with a CA of another pairing accepted")
	}
}

// TestMutualTLS checks that members of one pairing connect over TLS 1.3 and
// that a member of another pairing is refused on both sides.
func TestMutualTLS(t *testing.T) {
	p, _ := Pair([]string{"a", "b"})
	other, _ := Pair([]string{"x"})
	tests := []struct {
		name   string
		client *Bundle
		ok     bool
	}{
		{"member", p[1], true},
		{"foreign", other[0], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", p[0].ServerConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					done <- err
					return
				}
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					done <- err
					return
				}
				id, err := PeerID(tc.ConnectionState())
				if err == nil && id != "b" {
					err = errors.New("peer ID " + id)
				}
				if tc.ConnectionState().Version != tls.VersionTLS13 {
					err = errors.New("not TLS 1.3")
				}
				_, _ = io.Copy(io.Discard, c)
				done <- err
			}()
			c, err := tls.Dial("tcp", ln.Addr().String(), tc.client.ClientConfig())
			if err == nil {
				err = c.Handshake()
				_, _ = c.Write([]byte("x"))
				var one [1]byte
				_ = c.SetReadDeadline(timeNowPlus())
				if _, rerr := c.Read(one[:]); rerr != nil && !errors.Is(rerr, net.ErrClosed) && !isTimeout(rerr) {
					err = rerr
				}
				c.Close()
			}
			serr := <-done
			if tc.ok && (err != nil || serr != nil) {
				t.Fatalf("member refused: client %v, server %v", err, serr)
			}
			if !tc.ok && err == nil && serr == nil {
				t.Fatal("foreign pairing accepted")
			}
		})
	}
}

func FuzzParseBundle(f *testing.F) {
	p, _ := Pair([]string{"a"})
	good, _ := p[0].Marshal()
	f.Add(good)
	f.Add([]byte("-----BEGIN NVR PAIR-----\nNode: a\nPair-Key: 00\n\n-----END NVR PAIR-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		if _, err := b.Marshal(); err != nil {
			t.Fatalf("accepted bundle does not marshal: %v", err)
		}
	})
}
