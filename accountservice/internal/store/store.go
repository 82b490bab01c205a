// Package store keeps accounts in an embedded bbolt file.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrNotFound says no account has the id.
var ErrNotFound = errors.New("account not found")

var bucket = []byte("accounts")

// Seed range: accounts 10000 … 10099 named Person_0 … Person_99.
const (
	FirstSeedID = 10000
	SeedCount   = 100
)

// Account is one stored account.
type Account struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Store is a bbolt-backed account store, safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (creating when absent) the store at path and seeds it. Seeding
// writes only accounts that are missing, so reopening loses and duplicates
// nothing.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.seed(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) seed() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		for i := 0; i < SeedCount; i++ {
			id := strconv.Itoa(FirstSeedID + i)
			if b.Get([]byte(id)) != nil {
				continue
			}
			v, err := json.Marshal(Account{ID: id, Name: "Person_" + strconv.Itoa(i)})
			if err != nil {
				return err
			}
			if err := b.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed store: %w", err)
	}
	return nil
}

// Get returns the account with id, or ErrNotFound.
func (s *Store) Get(id string) (Account, error) {
	var a Account
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return errors.New("accounts bucket missing")
		}
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &a)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Account{}, err
		}
		return Account{}, fmt.Errorf("get account %s: %w", id, err)
	}
	return a, nil
}

// Count returns how many accounts are stored.
func (s *Store) Count() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return errors.New("accounts bucket missing")
		}
		n = b.Stats().KeyN
		return nil
	})
	return n, err
}

// Check reports whether the store can serve reads.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucket) == nil {
			return errors.New("accounts bucket missing")
		}
		return nil
	})
}

// Close closes the file; later calls fail.
func (s *Store) Close() error { return s.db.Close() }
