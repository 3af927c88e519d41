package postgres

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// An id sent as its 16 bytes encodes as it did through its driver.Valuer: alone, in an array,
// through a pointer, and nil.
func TestUUIDsEncodeAsTheirBytes(t *testing.T) {
	ids := []uuid.UUID{uuid.MustParse("0193b5a4-7f3e-7c2d-9a1b-2c3d4e5f6a7b"), {}, uuid.Max}
	plain, fast := pgtype.NewMap(), pgtype.NewMap()
	registerUUIDs(fast)
	for _, tc := range []struct {
		name  string
		oid   uint32
		value any
	}{
		{"one", pgtype.UUIDOID, ids[0]},
		{"zero", pgtype.UUIDOID, ids[1]},
		{"array", pgtype.UUIDArrayOID, ids},
		{"pointer", pgtype.UUIDOID, &ids[2]},
		{"nil pointer", pgtype.UUIDOID, (*uuid.UUID)(nil)},
	} {
		for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
			got, err := fast.Encode(tc.oid, format, tc.value, nil)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			want, err := plain.Encode(tc.oid, format, tc.value, nil)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Errorf("%s (format %d): %x, want %x", tc.name, format, got, want)
			}
		}
	}
}

func BenchmarkEncodeUUIDArray(b *testing.B) {
	ids := make([]uuid.UUID, 256)
	for i := range ids {
		ids[i] = uuid.New()
	}
	for _, reg := range []bool{false, true} {
		name := map[bool]string{false: "valuer", true: "bytes"}[reg]
		b.Run(name, func(b *testing.B) {
			m := pgtype.NewMap()
			if reg {
				registerUUIDs(m)
			}
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, ids, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
