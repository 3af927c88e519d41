// Package cities names the cities the card serves by one canonical id ("shanghai"), and accepts
// their Chinese and English names as aliases wherever a city is named: a card's insurance city, an
// insurance fund's party id, a merchant's or an institution's city, a fare table's or a medical
// policy's city. The list is data (cities.json), embedded and checked when first used.
//
// A name the list does not know is kept as written: the card serves 336 cities and a city the
// list lacks still works, under the name it was first given.
package cities

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// City is one city: its canonical id and its names.
type City struct {
	ID      string   `json:"id"`
	Chinese string   `json:"zh"`
	English string   `json:"en"`
	Aliases []string `json:"aliases,omitempty"`
}

//go:embed cities.json
var data []byte

// maxCities bounds the list: the 336 cities the card serves, with room.
const maxCities = 1000

type index struct {
	byName map[string]*City
	list   []City
}

var load = sync.OnceValues(func() (*index, error) { return parse(data) })

func parse(b []byte) (*index, error) {
	var list []City
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("cities: %w", err)
	}
	if len(list) > maxCities {
		return nil, fmt.Errorf("cities: %d, more than %d", len(list), maxCities)
	}
	ix := &index{byName: map[string]*City{}, list: list}
	for i := range list {
		c := &list[i]
		if c.ID == "" || c.ID != strings.ToLower(c.ID) || c.Chinese == "" || c.English == "" {
			return nil, fmt.Errorf("cities: entry %d needs a lowercase id, a Chinese and an English name", i)
		}
		names := append([]string{c.ID, c.Chinese, c.Chinese + "市", c.English}, c.Aliases...)
		for _, n := range names {
			k := key(n)
			if prior, ok := ix.byName[k]; ok && prior != c {
				return nil, fmt.Errorf("cities: %q names both %s and %s", n, prior.ID, c.ID)
			}
			ix.byName[k] = c
		}
	}
	return ix, nil
}

// key is how a name is looked up: trimmed, Latin letters in lower case.
func key(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// Lookup returns the city a name names: its id, its Chinese name (with or without 市), its
// English name in any case, or one of its aliases.
func Lookup(name string) (City, bool) {
	ix, err := load()
	if err != nil || !utf8.ValidString(name) {
		return City{}, false
	}
	c, ok := ix.byName[key(name)]
	if !ok {
		return City{}, false
	}
	return *c, true
}

// Canonical returns the canonical id of the city name names, or name as written when the list
// does not know it.
func Canonical(name string) string {
	if c, ok := Lookup(name); ok {
		return c.ID
	}
	return name
}

// All lists the cities, in the list's order.
func All() ([]City, error) {
	ix, err := load()
	if err != nil {
		return nil, err
	}
	return append([]City(nil), ix.list...), nil
}
