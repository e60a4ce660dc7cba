using System.Collections.Concurrent;
using System.Diagnostics;

namespace HybridServing.Bench.Hosting;

/// <summary>
/// A service started as a separate process (so its CPU and memory are its own), waited for until
/// its health endpoint answers, and always stopped: on dispose, on Ctrl+C and on process exit.
/// Its output is kept (last lines) for the error message when it fails to start.
/// </summary>
internal sealed class ChildProcess : IAsyncDisposable
{
    /// <summary>The variable ServiceDefaults watches: the service stops when that process is gone.</summary>
    public const string ParentPidVariable = "HYBRIDSERVING_APPHOST_PID";

    private static readonly ConcurrentDictionary<int, Process> Running = new();
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _tail = new();

    static ChildProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        Console.CancelKeyPress += (_, e) =>
        {
            KillAll();
            e.Cancel = false;
        };
    }

    private ChildProcess(string name, Process process, Uri url)
    {
        Name = name;
        _process = process;
        Url = url;
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

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var child = new ChildProcess(name, process, url);
        process.OutputDataReceived += (_, e) => child.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => child.Keep(e.Data);
        process.Start();
        Running[process.Id] = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        try
        {
            await child.WaitHealthyAsync(healthPath, timeout ?? TimeSpan.FromSeconds(60));
        }
        catch
        {
            await child.DisposeAsync();
            throw;
        }
        return child;
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

/// <summary>Free loopback ports (bind port 0, read, release).</summary>
internal static class FreePorts
{
    /// <summary>A free loopback port below the ephemeral range (outgoing connections cannot take it meanwhile).</summary>
    public static int Get() => HybridServing.TestKit.Ports.GetFree();

    public static Uri Url(int port) => new($"http://127.0.0.1:{port}/");
}

/// <summary>Progress lines with the time since the harness started (where a slow run spends its time).</summary>
internal static class Progress
{
    private static readonly Stopwatch Clock = Stopwatch.StartNew();

    public static void Log(string message) =>
        Console.WriteLine($"[{Clock.Elapsed:mm\\:ss\\.f}] {message}");
}
