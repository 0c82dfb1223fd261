package main

import (
	"strings"
	"testing"
	"time"
)

// section returns a generated section that holds blocks, as replaceGenerated writes it.
func section(blocks ...string) string {
	s := beginMarker + "\n" + sectionPreamble + "\n\n"
	for _, b := range blocks {
		s += b + "\n\n"
	}
	return s + endMarker
}

func marker(name string) string { return blockMarkerPrefix + name + blockMarkerSuffix }

func TestReplaceGenerated(t *testing.T) {
	order := []string{"throughput", "overhead"}
	oldThroughput := marker("throughput") + "\nold throughput"
	newThroughput := marker("throughput") + "\nnew throughput"
	oldOverhead := marker("overhead") + "\nold overhead"
	newOverhead := marker("overhead") + "\nnew overhead"
	prose := "# Benchmarks\n\nHand-written text | with a pipe.\n"

	tests := []struct {
		name   string
		doc    string
		blocks map[string]string
		want   string
	}{
		{
			name:   "empty file",
			doc:    "",
			blocks: map[string]string{"overhead": newOverhead},
			want:   section(newOverhead) + "\n",
		},
		{
			name:   "no markers appends at the end",
			doc:    prose,
			blocks: map[string]string{"throughput": newThroughput},
			want:   prose + "\n" + section(newThroughput) + "\n",
		},
		{
			name:   "replaces one block and keeps the other",
			doc:    prose + "\n" + section(oldThroughput, oldOverhead) + "\n\nAfter the section.\n",
			blocks: map[string]string{"overhead": newOverhead},
			want:   prose + "\n" + section(oldThroughput, newOverhead) + "\n\nAfter the section.\n",
		},
		{
			name:   "puts blocks in order",
			doc:    section(oldOverhead),
			blocks: map[string]string{"throughput": newThroughput},
			want:   section(newThroughput, oldOverhead),
		},
		{
			name:   "keeps a block of an unknown scenario at the end",
			doc:    section(marker("retired")+"\nretired block", oldOverhead),
			blocks: map[string]string{"throughput": newThroughput},
			want:   section(newThroughput, oldOverhead, marker("retired")+"\nretired block"),
		},
		{
			name:   "rebuilds a preamble edited by hand",
			doc:    beginMarker + "\nedited preamble\n\n" + oldOverhead + "\n" + endMarker,
			blocks: map[string]string{},
			want:   section(oldOverhead),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replaceGenerated(tt.doc, tt.blocks, order)
			if err != nil {
				t.Fatalf("replaceGenerated: %v", err)
			}
			if got != tt.want {
				t.Errorf("replaceGenerated =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestReplaceGeneratedTwiceIsStable(t *testing.T) {
	blocks := map[string]string{"overhead": marker("overhead") + "\nfigures"}
	once, err := replaceGenerated("# Benchmarks\n", blocks, []string{"overhead"})
	if err != nil {
		t.Fatal(err)
	}
	twice, err := replaceGenerated(once, blocks, []string{"overhead"})
	if err != nil {
		t.Fatal(err)
	}
	if twice != once {
		t.Errorf("second replacement =\n%s\nwant the first\n%s", twice, once)
	}
}

func TestReplaceGeneratedRejectsBrokenMarkers(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"begin without end", "text\n" + beginMarker + "\n", "want one"},
		{"two begins", beginMarker + beginMarker + endMarker, "want one"},
		{"end before begin", endMarker + "\n" + beginMarker, "comes before"},
		{"two blocks of one scenario", section(marker("memory")+"\na", marker("memory")+"\nb"), "two blocks named memory"},
		{"block without a name", section(marker("") + "\na"), "without a scenario name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := replaceGenerated(tt.doc, map[string]string{}, []string{"memory"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("replaceGenerated error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBlockRender(t *testing.T) {
	blk := &block{
		name:    "overhead",
		title:   "Client overhead",
		command: "make build && go run ./cmd/reclaim-bench -only overhead -out BENCHMARKS.md",
		machine: machine{cpu: "Test CPU", cores: 2, memory: 24 << 30, goVer: "go1.26.8", platform: "linux/amd64",
			measured: time.Date(2026, 12, 5, 14, 3, 0, 0, time.UTC)},
		intro:   []string{"Set-up."},
		table:   table{header: []string{"figure", "value"}, rows: [][]string{{"a|b", "1"}}},
		targets: []target{{goal: "ratio at least 0.5", figure: "0.81", met: true}, {goal: "share at most 2%", figure: "3.10%"}},
		notes:   []string{"A note."},
	}
	want := marker("overhead") + "\n" +
		"### Client overhead\n\n" +
		"```sh\nmake build && go run ./cmd/reclaim-bench -only overhead -out BENCHMARKS.md\n```\n\n" +
		"Machine: Test CPU, 2 cores, 24.0 GiB RAM, linux/amd64, go1.26.8, measured 2026-12-05 14:03 UTC.\n\n" +
		"Set-up.\n\n" +
		"| figure | value |\n|---|---|\n| a\\|b | 1 |\n\n" +
		"Targets:\n\n" +
		"- met: ratio at least 0.5. Measured: 0.81.\n" +
		"- **missed**: share at most 2%. Measured: 3.10%.\n\n" +
		"A note."
	if got := blk.render(); got != want {
		t.Errorf("render =\n%s\nwant\n%s", got, want)
	}

	// The rendered block must come back out of a section unchanged.
	doc, err := replaceGenerated("", map[string]string{"overhead": blk.render()}, []string{"overhead"})
	if err != nil {
		t.Fatal(err)
	}
	names, texts, err := parseBlocks(doc[len(beginMarker):strings.Index(doc, endMarker)])
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || strings.TrimSpace(texts["overhead"]) != want {
		t.Errorf("parsed blocks %v = %q, want the rendered block", names, texts["overhead"])
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		width int
		want  string
	}{
		{"fits", "one two three", 20, "one two three"},
		{"breaks at spaces", "one two three four", 9, "one two\nthree\nfour"},
		{"exact width", "abc def", 7, "abc def"},
		{"counts characters, not bytes", "0.95 × min", 10, "0.95 × min"},
		{"long word on its own line", "a abcdefghijk b", 5, "a\nabcdefghijk\nb"},
		{"list item indents", "- met: one two three", 11, "- met: one\n  two three"},
		{"joins line breaks and runs of spaces", "one\n two   three", 40, "one two three"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wrap(tt.text, tt.width); got != tt.want {
				t.Errorf("wrap(%q, %d) = %q, want %q", tt.text, tt.width, got, tt.want)
			}
		})
	}
}
