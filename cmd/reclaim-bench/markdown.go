package main

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Markers of the generated section and of each scenario's block inside it. Everything outside the
// section belongs to people and is never changed.
const (
	beginMarker       = "<!-- bench:begin -->"
	endMarker         = "<!-- bench:end -->"
	blockMarkerPrefix = "<!-- bench:scenario "
	blockMarkerSuffix = " -->"
)

// sectionPreamble opens the generated section, before the blocks.
const sectionPreamble = `## Figures measured by make bench

This section is written by ` + "`make bench`" + ` (the program in cmd/reclaim-bench); edit the program, not the
text. Each block is rewritten when its scenario runs again and names the command that reproduces it and
the machine it ran on. Every ratio compares two figures measured in the same invocation, because the
machine is shared and its speed varies from one minute to the next.`

// block is the measured result of one scenario, as it appears in the generated section.
type block struct {
	name    string
	title   string
	command string
	machine machine
	// intro describes the set-up, one paragraph per entry.
	intro []string
	table table
	// targets are the goals of the scenario, each met or missed.
	targets []target
	// notes follow the targets, one paragraph per entry.
	notes []string
}

// table is a markdown table with a header row.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// target is a goal with the figure measured for it.
type target struct {
	goal   string
	figure string
	met    bool
}

// render returns the block as markdown, starting with its marker line.
func (blk *block) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s%s\n", blockMarkerPrefix, blk.name, blockMarkerSuffix)
	fmt.Fprintf(&b, "### %s\n\n", blk.title)
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", blk.command)
	fmt.Fprintf(&b, "Machine: %s.\n\n", blk.machine)
	for _, paragraph := range blk.intro {
		b.WriteString(wrap(paragraph, lineWidth) + "\n\n")
	}
	if len(blk.table.header) > 0 {
		b.WriteString(blk.table.render() + "\n")
	}
	if len(blk.targets) > 0 {
		b.WriteString("Targets:\n\n")
		for _, t := range blk.targets {
			verdict := "met"
			if !t.met {
				verdict = "**missed**"
			}
			b.WriteString(wrap(fmt.Sprintf("- %s: %s. Measured: %s.", verdict, t.goal, t.figure), lineWidth) + "\n")
		}
		b.WriteString("\n")
	}
	for _, paragraph := range blk.notes {
		b.WriteString(wrap(paragraph, lineWidth) + "\n\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// lineWidth is the width at which paragraphs are wrapped, as in the hand-written part of BENCHMARKS.md.
const lineWidth = 105

// wrap breaks text into lines of at most width characters at spaces. A word longer than width gets a line
// of its own. Lines after the first of a list item are indented by two spaces.
func wrap(text string, width int) string {
	indent := ""
	if strings.HasPrefix(text, "- ") {
		indent = "  "
	}
	var b strings.Builder
	line := 0
	for i, word := range strings.Fields(text) {
		switch {
		case i == 0:
		case line+1+utf8.RuneCountInString(word) > width:
			b.WriteString("\n" + indent)
			line = len(indent)
		default:
			b.WriteString(" ")
			line++
		}
		b.WriteString(word)
		line += utf8.RuneCountInString(word)
	}
	return b.String()
}

func (t *table) render() string {
	var b strings.Builder
	writeRow := func(cells []string) {
		b.WriteString("|")
		for _, cell := range cells {
			b.WriteString(" " + strings.ReplaceAll(cell, "|", `\|`) + " |")
		}
		b.WriteString("\n")
	}
	writeRow(t.header)
	b.WriteString("|" + strings.Repeat("---|", len(t.header)) + "\n")
	for _, row := range t.rows {
		writeRow(row)
	}
	return b.String()
}

// replaceGenerated returns doc with its generated section rebuilt: the blocks given by name replace
// their old versions, the other old blocks stay, and blocks appear in order, followed by old blocks of
// names outside order. A doc without markers gets the section appended at its end. Text outside the
// markers is kept byte for byte.
func replaceGenerated(doc string, blocks map[string]string, order []string) (string, error) {
	before, inner, after, err := splitGenerated(doc)
	if err != nil {
		return "", err
	}
	oldNames, old, err := parseBlocks(inner)
	if err != nil {
		return "", err
	}

	var parts []string
	placed := map[string]bool{}
	for _, name := range order {
		text, ok := blocks[name]
		if !ok {
			text, ok = old[name]
		}
		if ok {
			parts = append(parts, strings.TrimSpace(text))
			placed[name] = true
		}
	}
	for _, name := range oldNames {
		if !placed[name] {
			parts = append(parts, strings.TrimSpace(old[name]))
		}
	}

	var b strings.Builder
	b.WriteString(before)
	b.WriteString(beginMarker + "\n")
	b.WriteString(sectionPreamble + "\n\n")
	for _, part := range parts {
		b.WriteString(part + "\n\n")
	}
	b.WriteString(endMarker)
	b.WriteString(after)
	return b.String(), nil
}

// splitGenerated returns the text before the begin marker, between the markers and after the end
// marker. Without markers, before is doc with a blank line to separate the section, and after is a
// line end.
func splitGenerated(doc string) (before, inner, after string, err error) {
	begins, ends := strings.Count(doc, beginMarker), strings.Count(doc, endMarker)
	switch {
	case begins == 0 && ends == 0:
		before = doc
		if before != "" {
			before = strings.TrimRight(before, "\n") + "\n\n"
		}
		return before, "", "\n", nil
	case begins != 1 || ends != 1:
		return "", "", "", fmt.Errorf("want one %s and one %s, found %d and %d; fix the markers by hand", beginMarker, endMarker, begins, ends)
	}
	begin, end := strings.Index(doc, beginMarker), strings.Index(doc, endMarker)
	if end < begin {
		return "", "", "", fmt.Errorf("%s comes before %s; fix the markers by hand", endMarker, beginMarker)
	}
	return doc[:begin], doc[begin+len(beginMarker) : end], doc[end+len(endMarker):], nil
}

// parseBlocks splits the inside of the generated section into blocks by their marker lines and
// returns their names in order and their text, marker line included. Text before the first marker is
// the preamble, which is rebuilt, so it is dropped.
func parseBlocks(inner string) ([]string, map[string]string, error) {
	var names []string
	texts := map[string]string{}
	current := ""
	var text strings.Builder
	flush := func() {
		if current != "" {
			texts[current] = text.String()
		}
		text.Reset()
	}
	for _, line := range strings.SplitAfter(inner, "\n") {
		trimmed := strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(trimmed, blockMarkerPrefix); ok && strings.HasSuffix(name, blockMarkerSuffix) {
			name = strings.TrimSuffix(name, blockMarkerSuffix)
			flush()
			if name == "" {
				return nil, nil, errors.New("the generated section has a block marker without a scenario name; fix it by hand")
			}
			if _, seen := texts[name]; seen {
				return nil, nil, fmt.Errorf("the generated section has two blocks named %s; remove one by hand", name)
			}
			names = append(names, name)
			current = name
		}
		text.WriteString(line)
	}
	flush()
	return names, texts, nil
}
