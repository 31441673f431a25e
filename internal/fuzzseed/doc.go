// Package fuzzseed keeps generated fuzz seed corpora in step with the code
// that generates them: tests describe the seeds, Check compares them with
// the files under testdata/fuzz and, when asked, rewrites them. Files that
// a test does not generate (crashers kept as regression seeds) are left
// alone.
package fuzzseed
