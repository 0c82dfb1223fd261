package main

// The machines that run the tests have no container engine, so these tests check the Dockerfile as
// text: it must build the binary exactly as the Makefile does, and produce the image Kubernetes expects.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoFile returns the content of a file at the repository root, two folders up from this package.
func repoFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// shellWords splits a command line into words, keeping text in double quotes together without its quotes.
func shellWords(line string) []string {
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}

// buildCommand returns the words of a go build command without the value of -o, which names a path of
// its own in each file, with ${VAR} written as $(VAR).
func buildCommand(t *testing.T, line string) []string {
	t.Helper()
	words := shellWords(strings.ReplaceAll(strings.ReplaceAll(line, "${", "$("), "}", ")"))
	if i := slices.Index(words, "-o"); i >= 0 && i+1 < len(words) {
		words = slices.Delete(words, i+1, i+2)
	}
	return words
}

// dockerfileBuild returns the go build command of the Dockerfile, and every instruction line.
func dockerfileBuild(t *testing.T) (build string, lines []string) {
	t.Helper()
	for _, line := range strings.Split(repoFile(t, "Dockerfile"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines = append(lines, line)
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			build = strings.TrimPrefix(line, "RUN ")
		}
	}
	if build == "" {
		t.Fatal("the Dockerfile has no RUN line with go build")
	}
	return build, lines
}

// makefileBuild returns the Makefile's command that builds ./cmd/reclaim, with $(GO) and $(LDFLAGS)
// replaced by their values.
func makefileBuild(t *testing.T) string {
	t.Helper()
	var build, ldflags string
	for _, line := range strings.Split(repoFile(t, "Makefile"), "\n") {
		if value, ok := strings.CutPrefix(line, "LDFLAGS := "); ok {
			ldflags = strings.TrimSpace(value)
		}
		if strings.HasPrefix(line, "\t") && strings.Contains(line, " build ") && strings.HasSuffix(line, "./cmd/reclaim") {
			build = strings.TrimSpace(line)
		}
	}
	if build == "" || ldflags == "" {
		t.Fatalf("the Makefile has no build command of ./cmd/reclaim (%q) or no LDFLAGS (%q)", build, ldflags)
	}
	return strings.NewReplacer("$(GO)", "go", "$(LDFLAGS)", ldflags).Replace(build)
}

func TestImageBuildsLikeMakefile(t *testing.T) {
	docker, _ := dockerfileBuild(t)
	got, want := buildCommand(t, docker), buildCommand(t, makefileBuild(t))
	if !slices.Equal(got, want) {
		t.Errorf("Dockerfile builds with %q,\nthe Makefile with %q; keep them the same", got, want)
	}
	if !slices.Contains(got, "CGO_ENABLED=0") {
		t.Errorf("Dockerfile build %q is not static: want CGO_ENABLED=0", got)
	}
}

func TestImageStages(t *testing.T) {
	_, lines := dockerfileBuild(t)
	goVersion := ""
	for _, line := range strings.Split(repoFile(t, "go.mod"), "\n") {
		if v, ok := strings.CutPrefix(line, "go "); ok {
			goVersion = strings.TrimSpace(v)
		}
	}

	var froms []string
	for _, line := range lines {
		if from, ok := strings.CutPrefix(line, "FROM "); ok {
			froms = append(froms, from)
		}
	}
	if len(froms) != 2 {
		t.Fatalf("Dockerfile stages = %q, want a build stage and a final stage", froms)
	}
	if want := "golang:" + goVersion + " AS build"; froms[0] != want {
		t.Errorf("build stage = %q, want %q, the Go of go.mod", froms[0], want)
	}
	if !strings.HasPrefix(froms[1], "gcr.io/distroless/static") || !strings.HasSuffix(froms[1], ":nonroot") {
		t.Errorf("final stage = %q, want distroless static, nonroot", froms[1])
	}

	final := lines[slices.IndexFunc(lines, func(l string) bool { return l == "FROM "+froms[1] }):]
	for _, want := range []string{"USER nonroot:nonroot", `ENTRYPOINT ["/reclaim"]`, "COPY --from=build /out/reclaim /reclaim"} {
		if !slices.Contains(final, want) {
			t.Errorf("final stage %q lacks %q", final, want)
		}
	}
	if !slices.Contains(lines, "ARG VERSION=dev") {
		t.Errorf("Dockerfile lacks ARG VERSION=dev, which make image sets from git")
	}
	if !strings.Contains(repoFile(t, "Makefile"), "build --build-arg VERSION=$(VERSION)") {
		t.Errorf("the Makefile's image target does not pass the version from git")
	}
}

func TestShellWords(t *testing.T) {
	got := shellWords(`CGO_ENABLED=0 go build -ldflags "-X main.version=$(VERSION)"  ./cmd/reclaim`)
	want := []string{"CGO_ENABLED=0", "go", "build", "-ldflags", "-X main.version=$(VERSION)", "./cmd/reclaim"}
	if !slices.Equal(got, want) {
		t.Errorf("shellWords() = %q, want %q", got, want)
	}
}
