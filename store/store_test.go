package store

import (
	"context"
	"testing"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		in      string
		addrs   []string
		cluster bool
		master  string
		db      int
		wantErr bool
	}{
		{in: "redis://127.0.0.1:6379", addrs: []string{"127.0.0.1:6379"}},
		{in: "redis://:pw@127.0.0.1:6379/3", addrs: []string{"127.0.0.1:6379"}, db: 3},
		{in: "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002", addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}, cluster: true},
		{in: "redis://127.0.0.1:7000,127.0.0.1:7001", addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, cluster: true},
		{in: "redis://127.0.0.1:7000?cluster=true", addrs: []string{"127.0.0.1:7000"}, cluster: true},
		{in: "10.0.0.1:26379,10.0.0.2:26379?master=mymaster", addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379"}, master: "mymaster"},
		{in: "not a url", wantErr: true},
		{in: "http://x:1", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			o, err := ParseURL(c.in)
			if c.wantErr {
				if err == nil {
					t.Fatalf("want error, got %+v", o)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(o.Addrs) != len(c.addrs) || o.IsClusterMode != c.cluster || o.MasterName != c.master || o.DB != c.db {
				t.Fatalf("got %+v", o)
			}
			for i := range c.addrs {
				if o.Addrs[i] != c.addrs[i] {
					t.Fatalf("addr %d = %s", i, o.Addrs[i])
				}
			}
		})
	}
}

func TestEmbedded(t *testing.T) {
	s, err := Open("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Embedded == nil {
		t.Fatal("empty URL must start the embedded store")
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
