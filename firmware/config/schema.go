package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the schema this package reads and writes. Open migrates
// older databases up to it, all steps in one transaction.
const SchemaVersion = 4

// ErrSchemaTooNew is returned by Open for a database written by a newer
// firmware (a downgrade): it is left untouched.
var ErrSchemaTooNew = errors.New("configuration schema is newer than this firmware")

// migration moves a database from schema to-1 to schema to.
type migration struct {
	to   int
	what string
	fn   func(tx *bolt.Tx) error
}

// migrations, in order. Never edit a released step; append a new one.
//
//	1: initial layout: meta, cameras, users, settings. A v1 camera was
//	   {"name","url","username","password","tcp":bool,"retention_hours":int}
//	   and was always recorded.
//	2: cameras get "transport", "max_age" (text duration), "enabled" and the
//	   password moves to "password_cleartext"; the tokens and audit buckets
//	   appear.
//	3: the cluster placeholder settings appear (disabled).
//	4: the cluster settings become the pair's real ones ({"enabled",
//	   "node_id","members","heartbeats","vip","vip_interface",
//	   "mirror_bind"}); the placeholder's values ("node_name","peers",
//	   "witness"), never used by anything, are dropped: disabled, empty.
var migrations = []migration{
	{1, "initial layout", func(tx *bolt.Tx) error {
		return createBuckets(tx, bucketMeta, bucketCameras, bucketUsers, bucketSettings)
	}},
	{2, "camera transport, max age, enabled; tokens; audit", migrateCamerasV2},
	{3, "cluster settings", func(tx *bolt.Tx) error {
		raw, err := json.Marshal(Cluster{})
		if err != nil {
			return err
		}
		st := tx.Bucket(bucketSettings)
		if st.Get([]byte("cluster")) != nil {
			return nil
		}
		return st.Put([]byte("cluster"), raw)
	}},
	{4, "real cluster settings", migrateClusterV4},
}

// migrateClusterV4 replaces the schema-3 cluster placeholder with empty,
// disabled settings of the new shape.
func migrateClusterV4(tx *bolt.Tx) error {
	raw, err := json.Marshal(Cluster{})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketSettings).Put([]byte("cluster"), raw)
}

func createBuckets(tx *bolt.Tx, names ...[]byte) error {
	for _, n := range names {
		if _, err := tx.CreateBucketIfNotExists(n); err != nil {
			return fmt.Errorf("create bucket %s: %w", n, err)
		}
	}
	return nil
}

// cameraV1 is a camera as schema 1 stored it.
type cameraV1 struct {
	Name           string `json:"name"`
	URL            string `json:"url"`
	Username       string `json:"username,omitempty"`
	Password       string `json:"password,omitempty"`
	TCP            bool   `json:"tcp"`
	RetentionHours int    `json:"retention_hours"`
}

func migrateCamerasV2(tx *bolt.Tx) error {
	if err := createBuckets(tx, bucketTokens, bucketAudit); err != nil {
		return err
	}
	bk := tx.Bucket(bucketCameras)
	updates := map[string][]byte{}
	if err := bk.ForEach(func(k, v []byte) error {
		var old cameraV1
		if err := json.Unmarshal(v, &old); err != nil {
			return fmt.Errorf("camera %s: %w", k, err)
		}
		tr := TransportUDP
		if old.TCP {
			tr = TransportTCP
		}
		raw, err := json.Marshal(cameraDoc{Name: old.Name, URL: old.URL, Username: old.Username, PasswordCleartext: old.Password,
			Transport: tr, MaxAge: duration(time.Duration(old.RetentionHours) * time.Hour), Enabled: true})
		if err != nil {
			return err
		}
		updates[string(k)] = raw
		return nil
	}); err != nil {
		return err
	}
	for k, v := range updates {
		if err := bk.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

// schemaOf returns the database's schema version (0: empty database).
func schemaOf(tx *bolt.Tx) (int, error) {
	m := tx.Bucket(bucketMeta)
	if m == nil {
		return 0, nil
	}
	raw := m.Get(keySchema)
	if raw == nil {
		return 0, errors.New("meta bucket without a schema version")
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return 0, fmt.Errorf("bad schema version %q", raw)
	}
	return v, nil
}

// migrate brings tx's database to SchemaVersion and reports the version it
// started from.
func migrate(tx *bolt.Tx) (from int, err error) {
	from, err = schemaOf(tx)
	if err != nil {
		return 0, err
	}
	if from > SchemaVersion {
		return from, fmt.Errorf("%w: database has schema %d, firmware knows %d", ErrSchemaTooNew, from, SchemaVersion)
	}
	for _, m := range migrations {
		if m.to <= from {
			continue
		}
		if err := m.fn(tx); err != nil {
			return from, fmt.Errorf("migrate to schema %d (%s): %w", m.to, m.what, err)
		}
		if err := tx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(m.to))); err != nil {
			return from, fmt.Errorf("migrate to schema %d: record version: %w", m.to, err)
		}
	}
	return from, nil
}
