using System.Diagnostics;
using System.Text;
using HybridServing.TestKit;

namespace HybridServing.Autoscaler.Tests.Signals;

/// <summary>
/// A real Prometheus process (Debian package <c>prometheus</c>, installed by tests/run) scraping the given
/// targets every 200 ms. Nothing is skipped: without the binary the test fails and says what to run.
/// </summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly TempDirectory _dir;
    private readonly StringBuilder _log = new();

    private PrometheusServer(Process process, TempDirectory dir, Uri url)
    {
        _process = process;
        _dir = dir;
        Url = url;
    }

    public Uri Url { get; }

    /// <summary>A scrape job: its name, targets (http roots) and the labels Prometheus attaches to their series.</summary>
    public sealed record Job(string Name, IReadOnlyList<Uri> Targets, IReadOnlyDictionary<string, string>? Labels = null);

    public static async Task<PrometheusServer> StartAsync(params Job[] jobs)
    {
        var binary = FindOnPath("prometheus") ?? throw new InvalidOperationException(
            "The Prometheus tests need the 'prometheus' binary (Debian package prometheus) on PATH: run tests/run, which installs it.");
        var dir = new TempDirectory("prometheus");
        var config = new StringBuilder("global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n");
        foreach (var job in jobs)
        {
            config.Append("  - job_name: ").Append(job.Name).Append("\n    static_configs:\n      - targets: [")
                .AppendJoin(", ", job.Targets.Select(t => $"'{t.Authority}'")).Append("]\n");
            if (job.Labels is { Count: > 0 })
            {
                config.Append("        labels:\n");
                foreach (var (k, v) in job.Labels) config.Append("          ").Append(k).Append(": '").Append(v).Append("'\n");
            }
        }
        File.WriteAllText(dir.Combine("prometheus.yml"), config.ToString());
        var port = Ports.GetFree();
        var process = Process.Start(new ProcessStartInfo(binary,
        [
            $"--config.file={dir.Combine("prometheus.yml")}", $"--storage.tsdb.path={dir.Combine("data")}",
            $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        ])
        { RedirectStandardOutput = true, RedirectStandardError = true }) ?? throw new InvalidOperationException("prometheus did not start.");
        var server = new PrometheusServer(process, dir, new Uri($"http://127.0.0.1:{port}/"));
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var deadline = DateTime.UtcNow.AddSeconds(30); ; await Task.Delay(100))
        {
            if (process.HasExited) throw new InvalidOperationException($"prometheus exited with {process.ExitCode}: {server.Log}");
            try
            {
                if ((await http.GetAsync(new Uri(server.Url, "-/ready"))).IsSuccessStatusCode) return server;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            if (DateTime.UtcNow > deadline) throw new InvalidOperationException($"prometheus was not ready on {port} in 30 s: {server.Log}");
        }
    }

    public string Log
    {
        get { lock (_log) return _log.ToString(); }
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_log) _log.AppendLine(line);
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    public async Task StopAsync()
    {
        if (_process.HasExited) return;
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process.Dispose();
        _dir.Dispose();
    }
}
