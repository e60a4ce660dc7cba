using System.Diagnostics;
using System.Text.RegularExpressions;
using HybridServing.Contracts.Resources;
using HybridServing.TestKit;
using Xunit.Abstractions;

namespace HybridServing.Fuzz.Tests;

/// <summary>
/// Runs <c>fuzz/run</c> (afl-fuzz over the SharpFuzz-instrumented assembly, seeded with the committed corpus) for a
/// bounded time per target and fails on any crash or hang, naming the inputs. The cases run one after another (one
/// theory), so the targets do not share the two cores with each other.
/// </summary>
public sealed partial class CoverageGuidedFuzzTests(ITestOutputHelper output)
{
    /// <summary>Seconds of afl-fuzz per target; <c>FUZZ_SECONDS</c> runs longer.</summary>
    private static int Seconds => int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SECONDS"), out var s) && s > 0 ? s : 20;

    [Theory]
    [InlineData("safetensors-header")]
    [InlineData("peft-config")]
    [InlineData("request-body")]
    public async Task Afl_finds_no_crash_or_hang_within_the_bound(string target)
    {
        var root = CrdGenerator.FindRepositoryRoot(AppContext.BaseDirectory) ?? throw new InvalidOperationException("repository root not found");
        using var dir = new TempDirectory("fuzz-");
        var start = new ProcessStartInfo(Path.Combine(root, "fuzz", "run"), ["--seconds", Seconds.ToString(), "--out", dir.Path, target])
        {
            WorkingDirectory = root, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var text = await stdout + await stderr;
        output.WriteLine(text);
        Assert.True(process.ExitCode == 0, $"fuzz/run {target} exited {process.ExitCode}:\n{text}");
        var summary = Summary().Match(text);
        Assert.True(summary.Success, $"no summary line in:\n{text}");
        Assert.True(long.Parse(summary.Groups["execs"].Value) > 0, "afl-fuzz ran no input");
        Assert.True(int.Parse(summary.Groups["edges"].Value) > 0, "no coverage: the assembly was not instrumented");
        Assert.Equal("0", summary.Groups["crashes"].Value);
    }

    [GeneratedRegex(@": (?<execs>\d+) executions in \d+ s, (?<edges>\d+) edges, corpus \d+, (?<crashes>\d+) crashes")]
    private static partial Regex Summary();
}
