package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The bbolt layout (schema version 3):
//
//	meta      "schema" -> decimal schema version
//	cameras   name -> cameraDoc JSON
//	users     name -> userDoc JSON
//	tokens    name -> tokenDoc JSON
//	settings  "storage" -> storageDoc, "network" -> Network, "time" -> Time, "cluster" -> Cluster (JSON)
//	audit     8-byte big-endian sequence -> auditDoc JSON
//
// The same docs make up the export file, so a camera password is written as
// "password_cleartext" there and here.
var (
	bucketMeta     = []byte("meta")
	bucketCameras  = []byte("cameras")
	bucketUsers    = []byte("users")
	bucketTokens   = []byte("tokens")
	bucketSettings = []byte("settings")
	bucketAudit    = []byte("audit")
	keySchema      = []byte("schema")
)

// duration is a time.Duration written as text ("720h0m0s").
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = duration(v)
	return nil
}

type cameraDoc struct {
	Name              string    `json:"name"`
	URL               string    `json:"url"`
	Username          string    `json:"username,omitempty"`
	PasswordCleartext string    `json:"password_cleartext,omitempty"`
	Transport         Transport `json:"transport"`
	MaxAge            duration  `json:"max_age"`
	Enabled           bool      `json:"enabled"`
}

type userDoc struct {
	Name               string    `json:"name"`
	Role               Role      `json:"role"`
	PasswordHash       string    `json:"password_hash_argon2id"`
	MustChangePassword bool      `json:"must_change_password,omitempty"`
	Created            time.Time `json:"created"`
}

type tokenDoc struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Hash    string    `json:"token_sha256"`
	Created time.Time `json:"created"`
}

type storageDoc struct {
	DataDir        string   `json:"data_dir"`
	IndexPath      string   `json:"index_path,omitempty"`
	CommitInterval duration `json:"commit_interval"`
	DefaultMaxAge  duration `json:"default_max_age"`
}

// siteDoc is a whole site as written to an export file.
type siteDoc struct {
	Cameras []cameraDoc `json:"cameras"`
	Storage storageDoc  `json:"storage"`
	Network Network     `json:"network"`
	Time    Time        `json:"time"`
	Users   []userDoc   `json:"users"`
	Tokens  []tokenDoc  `json:"tokens"`
	Cluster Cluster     `json:"cluster"`
}

func toCameraDoc(c Camera) cameraDoc {
	return cameraDoc{c.Name, c.URL, c.Username, c.Password.Reveal(), c.Transport, duration(c.MaxAge), c.Enabled}
}

func (d cameraDoc) camera() Camera {
	return Camera{d.Name, d.URL, d.Username, Secret(d.PasswordCleartext), d.Transport, time.Duration(d.MaxAge), d.Enabled}
}

func toStorageDoc(s Storage) storageDoc {
	return storageDoc{s.DataDir, s.IndexPath, duration(s.CommitInterval), duration(s.DefaultMaxAge)}
}

func (d storageDoc) storage() Storage {
	return Storage{d.DataDir, d.IndexPath, time.Duration(d.CommitInterval), time.Duration(d.DefaultMaxAge)}
}

func toSiteDoc(s *Site) siteDoc {
	d := siteDoc{Storage: toStorageDoc(s.Storage), Network: s.Network, Time: s.Time, Cluster: s.Cluster,
		Cameras: []cameraDoc{}, Users: []userDoc{}, Tokens: []tokenDoc{}}
	for _, c := range s.Cameras {
		d.Cameras = append(d.Cameras, toCameraDoc(c))
	}
	for _, u := range s.Users {
		d.Users = append(d.Users, userDoc{u.Name, u.Role, u.PasswordHash, u.MustChangePassword, u.Created.UTC()})
	}
	for _, t := range s.Tokens {
		d.Tokens = append(d.Tokens, tokenDoc{t.Name, t.Role, t.Hash, t.Created.UTC()})
	}
	return d
}

func (d *siteDoc) site() Site {
	s := Site{Storage: d.Storage.storage(), Network: d.Network, Time: d.Time, Cluster: d.Cluster}
	for _, c := range d.Cameras {
		s.Cameras = append(s.Cameras, c.camera())
	}
	for _, u := range d.Users {
		s.Users = append(s.Users, User{u.Name, u.Role, u.PasswordHash, u.MustChangePassword, u.Created.UTC()})
	}
	for _, t := range d.Tokens {
		s.Tokens = append(s.Tokens, Token{t.Name, t.Role, t.Hash, t.Created.UTC()})
	}
	return s
}

// loadSite reads the whole configuration in tx (schema current).
func loadSite(tx *bolt.Tx) (Site, error) {
	var d siteDoc
	for _, b := range []struct {
		name []byte
		add  func([]byte) error
	}{
		{bucketCameras, func(v []byte) error {
			var c cameraDoc
			err := json.Unmarshal(v, &c)
			d.Cameras = append(d.Cameras, c)
			return err
		}},
		{bucketUsers, func(v []byte) error {
			var u userDoc
			err := json.Unmarshal(v, &u)
			d.Users = append(d.Users, u)
			return err
		}},
		{bucketTokens, func(v []byte) error {
			var t tokenDoc
			err := json.Unmarshal(v, &t)
			d.Tokens = append(d.Tokens, t)
			return err
		}},
	} {
		bk := tx.Bucket(b.name)
		if bk == nil {
			return Site{}, fmt.Errorf("load configuration: bucket %s missing", b.name)
		}
		if err := bk.ForEach(func(k, v []byte) error {
			if err := b.add(v); err != nil {
				return fmt.Errorf("%s/%s: %w", b.name, k, err)
			}
			return nil
		}); err != nil {
			return Site{}, fmt.Errorf("load configuration: %w", err)
		}
	}
	st := tx.Bucket(bucketSettings)
	if st == nil {
		return Site{}, fmt.Errorf("load configuration: bucket %s missing", bucketSettings)
	}
	for key, v := range map[string]any{"storage": &d.Storage, "network": &d.Network, "time": &d.Time, "cluster": &d.Cluster} {
		if raw := st.Get([]byte(key)); raw != nil {
			if err := json.Unmarshal(raw, v); err != nil {
				return Site{}, fmt.Errorf("load configuration: settings/%s: %w", key, err)
			}
		}
	}
	return d.site(), nil
}

// saveSite writes s over the stored configuration, touching only the keys
// that changed.
func saveSite(tx *bolt.Tx, s *Site) error {
	d := toSiteDoc(s)
	cams := map[string]any{}
	for _, c := range d.Cameras {
		cams[c.Name] = c
	}
	users := map[string]any{}
	for _, u := range d.Users {
		users[u.Name] = u
	}
	toks := map[string]any{}
	for _, t := range d.Tokens {
		toks[t.Name] = t
	}
	settings := map[string]any{"storage": d.Storage, "network": d.Network, "time": d.Time, "cluster": d.Cluster}
	for _, b := range []struct {
		name []byte
		want map[string]any
	}{{bucketCameras, cams}, {bucketUsers, users}, {bucketTokens, toks}, {bucketSettings, settings}} {
		if err := syncBucket(tx.Bucket(b.name), b.want); err != nil {
			return fmt.Errorf("save configuration: bucket %s: %w", b.name, err)
		}
	}
	return nil
}

func syncBucket(bk *bolt.Bucket, want map[string]any) error {
	if bk == nil {
		return fmt.Errorf("missing")
	}
	var stale [][]byte
	if err := bk.ForEach(func(k, _ []byte) error {
		if _, ok := want[string(k)]; !ok {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range stale {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	for k, v := range want {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", k, err)
		}
		if old := bk.Get([]byte(k)); old != nil && bytes.Equal(old, raw) {
			continue
		}
		if err := bk.Put([]byte(k), raw); err != nil {
			return err
		}
	}
	return nil
}
