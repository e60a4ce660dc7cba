using System.Collections.Concurrent;
using System.Diagnostics;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using HybridServing.TestKit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;
using TempDirectory = HybridServing.TestKit.TempDirectory;

namespace HybridServing.AppHost.Tests;

/// <summary>
/// The README as a test: the stack `dotnet run --project AppHost` starts (on a free port block, otherwise as
/// shipped: the sample adapters, the dev key, three engines, the Autoscaler), then every command of the README's
/// <c>bash readme-test</c> blocks run with bash from the repository root, checked against the <c>#=&gt;</c>
/// expectation written under it (<see cref="ReadmeCommands"/>). curl is run through a wrapper on PATH that only adds
/// <c>--dump-header</c>, so status codes and header names can be checked without changing the README's command.
/// </summary>
public sealed partial class ReadmeTests(ReadmeTests.Stack stack, ITestOutputHelper output) : IClassFixture<ReadmeTests.Stack>
{
    [Fact]
    public async Task Every_marked_README_command_prints_what_the_README_says()
    {
        var commands = ReadmeCommands.Parse(await File.ReadAllTextAsync(Path.Combine(Repository.Root, "README.md")));
        Assert.True(commands.Count >= 6, $"only {commands.Count} readme-test commands found");
        var failures = new List<string>();
        foreach (var command in commands)
        {
            Assert.True(command.Expect.Count > 0, $"README.md:{command.Line}: a readme-test command without a '#=>' line under it");
            var text = ReadmeCommands.OnPortBase(command.Text, stack.PortBase);
            var expected = command with { Expect = [.. command.Expect.Select(e => ReadmeCommands.OnPortBase(e, stack.PortBase))] };
            var started = Stopwatch.StartNew();
            var outcome = await stack.RunAsync(text);
            var problems = ReadmeCommands.Failures(expected, outcome);
            output.WriteLine($"README.md:{command.Line} ({started.Elapsed.TotalSeconds:F1} s) {(problems.Count == 0 ? "ok" : "FAILED")}: {text.Split('\n')[0]}");
            if (problems.Count > 0)
                failures.Add($"README.md:{command.Line}: {text}\n  {string.Join("\n  ", problems)}\n  stdout: {Tail(outcome.Stdout)}\n  stderr: {Tail(outcome.Stderr)}");
        }
        Assert.True(failures.Count == 0, string.Join("\n\n", failures));
    }

    [Fact]
    public async Task A_normal_start_logs_no_failure_and_an_idle_sidecar_stays_nearly_silent()
    {
        // Nothing at Error or above from the AppHost, and no component console line that is a fail: or crit: log.
        var failures = stack.Logs.Where(l => l.Level >= LogLevel.Error || (l.IsResource && FailureLine().IsMatch(l.Text))).ToList();
        Assert.True(failures.Count == 0, "a normal start logged failures:\n" + string.Join("\n", failures.Select(f => $"{f.Category}: {f.Text}")));

        var since = DateTimeOffset.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(10));
        var sidecar = stack.Logs.Where(l => l.At >= since && l.Category.EndsWith(".engine-0-sidecar", StringComparison.Ordinal)).ToList();
        foreach (var line in sidecar) output.WriteLine(line.Text);
        Assert.True(sidecar.Count < 10, $"an idle sidecar logged {sidecar.Count} lines in 10 s");
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"(^|\s)(fail|crit):")]
    private static partial System.Text.RegularExpressions.Regex FailureLine();

    private static string Tail(string text) => text.Length <= 1500 ? text : "…" + text[^1500..];

    /// <summary>The stack, started once for every test of the class.</summary>
    public sealed class Stack : IAsyncLifetime
    {
        private readonly TempDirectory _dir = new("readme");
        private DistributedApplication? _app;

        public int PortBase { get; private set; }

        /// <summary>Every line the AppHost logged (its own and, as the testing host forwards them, each component's console), colour codes removed.</summary>
        public ConcurrentQueue<LogLine> Logs { get; } = new();

        public async Task InitializeAsync()
        {
            PortBase = Ports.GetFreeBlock(AppHostOptions.PortOffsets.Last + 1);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(240));
            var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
                ["--port-base", PortBase.ToString(System.Globalization.CultureInfo.InvariantCulture), "--state-dir", _dir.Combine("state")], timeout.Token);
            appHost.Services.AddLogging(l => l.AddProvider(new CapturingLoggerProvider(Logs)));
            _app = await appHost.BuildAsync(timeout.Token);
            await _app.StartAsync(timeout.Token);
            foreach (var resource in appHost.Resources.OfType<ProjectResource>())
                await _app.ResourceNotifications.WaitForResourceHealthyAsync(resource.Name, timeout.Token);
            WriteCurlWrapper();
        }

        private string Bin => _dir.Combine("bin");

        private string Dumps => _dir.Combine("dumps");

        private void WriteCurlWrapper()
        {
            Directory.CreateDirectory(Bin);
            var wrapper = Path.Combine(Bin, "curl");
            File.WriteAllText(wrapper, """
                #!/bin/sh
                # The README's curl, unchanged, with its response headers recorded for the test.
                exec "$README_TEST_CURL" --dump-header "$README_TEST_DUMPS/$(date +%s%N)-$$" "$@"
                """.Replace("\r", "", StringComparison.Ordinal) + "\n");
            if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("the README's commands are bash");
            File.SetUnixFileMode(wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        internal async Task<ReadmeCommands.Outcome> RunAsync(string command)
        {
            if (Directory.Exists(Dumps)) Directory.Delete(Dumps, recursive: true);
            Directory.CreateDirectory(Dumps);
            var info = new ProcessStartInfo("bash") { WorkingDirectory = Repository.Root, RedirectStandardOutput = true, RedirectStandardError = true };
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add("set -euo pipefail\n" + command);
            // A user's shell, not the test host's: no MSBuild or test-platform variables leak into `dotnet run`.
            foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)
                         || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase) || k.StartsWith("OPENAI_", StringComparison.Ordinal)
                         || k.StartsWith("DOTNET_HOST_PATH", StringComparison.Ordinal)).ToList())
                info.Environment.Remove(key);
            info.Environment["PATH"] = Bin + ":" + info.Environment["PATH"];
            info.Environment["README_TEST_CURL"] = RealCurl();
            info.Environment["README_TEST_DUMPS"] = Dumps;
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(180));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                return new ReadmeCommands.Outcome(-1, await stdout, await stderr + "\n(killed after 180 s)", []);
            }
            var responses = Directory.GetFiles(Dumps).Order().Select(f => ReadmeCommands.ParseHeaderDump(File.ReadAllText(f))).ToList();
            return new ReadmeCommands.Outcome(process.ExitCode, await stdout, await stderr, responses);
        }

        private static string RealCurl()
        {
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
            {
                var candidate = Path.Combine(dir, "curl");
                if (File.Exists(candidate)) return candidate;
            }
            throw new InvalidOperationException("curl is not on PATH: the README's commands need it");
        }

        public async Task DisposeAsync()
        {
            if (_app is not null)
            {
                await _app.StopAsync();
                await _app.DisposeAsync();
            }
            _dir.Dispose();
        }
    }

    public sealed record LogLine(DateTimeOffset At, string Category, LogLevel Level, string Text)
    {
        /// <summary>A component's console line (the testing host forwards them as HybridServing.AppHost.Resources.{name}).</summary>
        public bool IsResource => Category.StartsWith("HybridServing.AppHost.Resources.", StringComparison.Ordinal);
    }

    private sealed partial class CapturingLoggerProvider(ConcurrentQueue<LogLine> lines) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, lines);

        public void Dispose()
        {
        }

        [System.Text.RegularExpressions.GeneratedRegex(@"\x1b\[[0-9;]*m")]
        private static partial System.Text.RegularExpressions.Regex Ansi();

        private sealed class Logger(string category, ConcurrentQueue<LogLine> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (IsEnabled(logLevel)) lines.Enqueue(new LogLine(DateTimeOffset.UtcNow, category, logLevel, Ansi().Replace(formatter(state, exception), "")));
            }
        }
    }
}
