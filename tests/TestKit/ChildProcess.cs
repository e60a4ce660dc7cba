using System.Collections.Concurrent;
using System.Diagnostics;

namespace HybridServing.TestKit;

/// <summary>
/// A service started as a separate process (so its CPU and memory are its own, and it can be
/// SIGKILLed), waited for until its health endpoint answers, and always stopped: on dispose, on
/// Ctrl+C and on process exit. Its output is kept (last lines) for the error message when it fails
/// to start, and lines can be counted (<see cref="CountLines"/>).
/// </summary>
public sealed class ChildProcess : IAsyncDisposable
{
    /// <summary>The variable ServiceDefaults watches: the service stops when that process is gone.</summary>
    public const string ParentPidVariable = "HYBRIDSERVING_APPHOST_PID";

    private static readonly ConcurrentDictionary<int, Process> Running = new();
    private readonly ProcessStartInfo _startInfo;
    private readonly ConcurrentQueue<string> _tail = new();
    private readonly ConcurrentDictionary<string, int> _counted = new(StringComparer.Ordinal);
    private readonly string _healthPath;
    private readonly TimeSpan _timeout;
    private Process _process = null!;

    static ChildProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        Console.CancelKeyPress += (_, e) =>
        {
            KillAll();
            e.Cancel = false;
        };
    }

    private ChildProcess(string name, ProcessStartInfo startInfo, Uri url, string healthPath, TimeSpan timeout)
    {
        Name = name;
        _startInfo = startInfo;
        Url = url;
        _healthPath = healthPath;
        _timeout = timeout;
    }

    public string Name { get; }
    public Uri Url { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>
    /// Starts <c>dotnet &lt;dll&gt; args</c> (or the harness itself when <paramref name="dll"/> is null) and waits
    /// until <paramref name="healthPath"/> on <paramref name="url"/> answers 200.
    /// </summary>
    public static async Task<ChildProcess> StartAsync(string name, string? dll, IEnumerable<string> args, Uri url,
        IReadOnlyDictionary<string, string>? environment = null, string healthPath = "/health", TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (dll is null)
        {
            // The harness hosting a helper role (the plain YARP pass-through).
            var self = Environment.ProcessPath!;
            psi.FileName = self;
            if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        }
        else
        {
            psi.FileName = DotnetHost();
            psi.ArgumentList.Add(dll);
        }
        foreach (var a in args) psi.ArgumentList.Add(a);
        // Quiet, production-like services: no console logging below warnings, no OTLP export.
        psi.Environment["Logging__LogLevel__Default"] = "Warning";
        psi.Environment["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning";
        psi.Environment["DOTNET_ENVIRONMENT"] = "Production";
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        psi.Environment.Remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        psi.Environment.Remove("ASPNETCORE_URLS");
        // ServiceDefaults' parent watch (also honoured by the pass-through): a killed harness (even SIGKILL) leaves no orphans.
        psi.Environment[ParentPidVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;

        var child = new ChildProcess(name, psi, url, healthPath, timeout ?? TimeSpan.FromSeconds(60));
        await child.LaunchAsync();
        return child;
    }

    /// <summary>SIGKILL (no graceful stop, in-flight requests cut mid-byte), and waits until the process is gone.</summary>
    public async Task KillAsync()
    {
        Running.TryRemove(_process.Id, out _);
        if (_process.HasExited) return;
        try { _process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _process.WaitForExitAsync(cts.Token);
    }

    /// <summary>Starts the same command line again (after <see cref="KillAsync"/>) and waits until it is healthy.</summary>
    public Task RestartAsync()
    {
        if (!_process.HasExited) throw new InvalidOperationException($"{Name} is still running; kill it first.");
        _process.Dispose();
        return LaunchAsync();
    }

    /// <summary>
    /// Counts output lines containing <paramref name="text"/> from now on (this and later processes of
    /// this child): <c>Watch("Loaded LoRA adapter")</c>, then <see cref="CountLines"/>.
    /// </summary>
    public void Watch(string text) => _counted.TryAdd(text, 0);

    /// <summary>Output lines containing a <see cref="Watch"/>ed text so far.</summary>
    public int CountLines(string text) => _counted.TryGetValue(text, out var n) ? n : throw new InvalidOperationException($"'{text}' is not watched.");

    private async Task LaunchAsync()
    {
        var process = new Process { StartInfo = _startInfo, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.Start();
        _process = process;
        Running[process.Id] = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await WaitHealthyAsync(_healthPath, _timeout);
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    /// <summary>Resident memory (VmRSS, the working set) in bytes, read fresh.</summary>
    public long WorkingSetBytes()
    {
        _process.Refresh();
        return _process.WorkingSet64;
    }

    /// <summary>CPU time the process has used so far.</summary>
    public TimeSpan CpuTime()
    {
        _process.Refresh();
        return _process.TotalProcessorTime;
    }

    private void Keep(string? line)
    {
        if (line is null) return;
        foreach (var text in _counted.Keys)
            if (line.Contains(text, StringComparison.Ordinal)) _counted.AddOrUpdate(text, 1, (_, n) => n + 1);
        _tail.Enqueue(line);
        while (_tail.Count > 40) _tail.TryDequeue(out _);
    }

    public string Tail => string.Join(Environment.NewLine, _tail);

    private async Task WaitHealthyAsync(string healthPath, TimeSpan timeout)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"{Name} exited with code {_process.ExitCode} before it was healthy:{Environment.NewLine}{Tail}");
            try
            {
                using var response = await client.GetAsync(new Uri(Url, healthPath));
                if (response.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(100);
        }
        throw new TimeoutException($"{Name} was not healthy at {new Uri(Url, healthPath)} within {timeout.TotalSeconds:0} s:{Environment.NewLine}{Tail}");
    }

    public async ValueTask DisposeAsync()
    {
        Running.TryRemove(_process.Id, out _);
        if (!_process.HasExited)
        {
            // SIGKILL of the process tree: a benchmark child holds no state worth a graceful stop.
            try { _process.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try { await _process.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { }
        }
        _process.Dispose();
    }

    private static void KillAll()
    {
        foreach (var (_, p) in Running)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
        }
    }

    private static string DotnetHost()
    {
        var root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (root is not null && File.Exists(Path.Combine(root, "dotnet"))) return Path.Combine(root, "dotnet");
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return "dotnet";
    }
}
