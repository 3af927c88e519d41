package medical

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/joinincard/engine/events"
)

// parseVersionedFiles parses data files by name, in name order. Each file is named after the id
// of what it holds ("shanghai.json"); a version from a date on has the date after an @
// ("shanghai@2026-07-01.json"), which setFrom records. holds names what a file holds in the
// refusal of a file named after another id ("the catalogue of", "policy").
func parseVersionedFiles[T any](files map[string][]byte, parse func([]byte) (T, error), id func(T) string,
	setFrom func(T, events.Date), holds string) ([]T, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	list := make([]T, 0, len(names))
	for _, name := range names {
		v, err := parse(files[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		base := strings.TrimSuffix(path.Base(name), ".json")
		fileID, date, dated := strings.Cut(base, "@")
		if fileID != id(v) {
			return nil, fmt.Errorf("%s holds %s %s: name the file %s.json", name, holds, id(v), id(v))
		}
		if dated {
			t, err := time.Parse(time.DateOnly, date)
			if err != nil || len(date) != len(time.DateOnly) {
				return nil, fmt.Errorf("%s: after the @: want a date yyyy-mm-dd", name)
			}
			setFrom(v, events.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()})
		}
		list = append(list, v)
	}
	return list, nil
}

// embeddedFiles returns the bytes of the files of fsys matching pattern, by base name; what names
// them in an error ("sample catalogues").
func embeddedFiles(fsys fs.FS, pattern, what string) (map[string][]byte, error) {
	names, err := fs.Glob(fsys, pattern)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out[path.Base(name)] = b
	}
	return out, nil
}

// readDataDir reads every *.json file of fsys's root, by name: at least one and at most maxFiles.
// one and many name a file and the files in errors ("policy", "policies").
func readDataDir(fsys fs.FS, maxFiles int, one, many string) (map[string][]byte, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", many, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no %s files", one)
	}
	if len(names) > maxFiles {
		return nil, fmt.Errorf("%d %s files, more than %d", len(names), one, maxFiles)
	}
	files := make(map[string][]byte, len(names))
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read %s %s: %w", one, name, err)
		}
		files[name] = data
	}
	return files, nil
}
