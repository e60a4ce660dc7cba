using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HybridServing.Bench.Cli;
using HybridServing.Bench.Hosting;
using HybridServing.Bench.Results;
using ScottPlot;
using SkiaSharp;

namespace HybridServing.Bench.Commands;

/// <summary>
/// <c>dashboard</c>: the Grafana dashboard of <c>k8s/monitoring</c> drawn from a real run, for readers without a
/// Grafana (Debian serves none here). The AppHost's local stack (with its Autoscaler) runs under a load that rises,
/// bursts and stops; a real Prometheus scrapes every component's <c>/metrics</c>; then each panel's own PromQL
/// (read from the dashboard JSON, only the rate window shortened to the run's scale) is asked of Prometheus
/// with <c>query_range</c> and charted, one chart per panel, in the dashboard's grid order, into one PNG.
/// </summary>
internal static partial class DashboardCommand
{
    public const string Help = """
        dashboard — k8s/monitoring's Grafana dashboard charted from a real run: AppHost stack + Prometheus + varying load.

        Options (defaults in brackets):
          --engines N     MockEngines, each with its sidecar; the Autoscaler keeps 1 awake when idle [3]
          --minutes M     length of the load (rise, burst, fall, idle) [4]
          --window S      rate()/histogram window replacing the panels' [5m], in seconds [30]
          --prometheus P  the prometheus binary [prometheus on PATH; Debian package prometheus]
          --results DIR   results folder (writes dashboard/dashboard.png and dashboard.md) [bench/results]
        """;

    private static readonly HashSet<string> Valued = ["--engines", "--minutes", "--window", "--prometheus", "--results"];

    /// <summary>The sample adapters the AppHost declares by default, and the base model, with Zipf-like weights.</summary>
    private static readonly (string Model, double Weight)[] Models =
        [("support-en", 8), ("support-de", 4), ("sql-lora", 2), ("support-fr", 1), (HybridServing.Hosting.EnginePoolOptions.DefaultBaseModel, 1)];

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs("dashboard", args, Valued, new HashSet<string>());
        var engines = a.Int("--engines", 3, 2, 8);
        var minutes = a.Int("--minutes", 4, 1, 60);
        var window = a.Int("--window", 30, 5, 600);
        var prometheus = a.String("--prometheus", "prometheus");
        var resultsDir = a.String("--results", RepoPaths.DefaultResults);
        var dashboardFile = Path.Combine(RepoPaths.Root, "k8s", "monitoring", "hybridserving-dashboard.json");
        var dashboard = JsonNode.Parse(await File.ReadAllTextAsync(dashboardFile))!;

        var work = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "hybridserving-bench", "dashboard-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture))).FullName;
        var log = Path.Combine(work, "stack.log");
        try
        {
            Progress.Log($"starting the AppHost: {engines} engines + sidecars, ControlPlane, Gateway, Autoscaler (logs: {log})");
            await using var stack = await AspireStack.StartAsync(
                ["--engines", engines.ToString(CultureInfo.InvariantCulture), .. AspireStack.PortArgs(engines), "--state-dir", Path.Combine(work, "state")],
                new Dictionary<string, IReadOnlyDictionary<string, string>>(), log, TimeSpan.FromMinutes(3), CancellationToken.None, withAutoscaler: true);
            string[] resources = [.. Enumerable.Range(0, engines).SelectMany(i => new[] { $"engine-{i}", $"engine-{i}-sidecar" }), "controlplane", "gateway", "autoscaler"];
            await using var prom = await PrometheusProcess.StartAsync(prometheus, work, resources.Select(r => stack.Endpoint(r)));
            Progress.Log($"Prometheus on {prom.Url} scraping {resources.Length} components every second");

            var started = DateTimeOffset.UtcNow;
            Progress.Log($"load for {minutes} min: rise, burst, fall, idle");
            var sent = await DriveAsync(stack.Endpoint("gateway"), TimeSpan.FromMinutes(minutes));
            await Task.Delay(TimeSpan.FromSeconds(5)); // one more scrape of the idle end
            var ended = DateTimeOffset.UtcNow;
            Progress.Log($"sent {sent.Total} requests ({sent.Failed} not 2xx); querying every panel");

            var charts = new List<byte[]>();
            var empty = new List<string>();
            var step = Math.Max(2, (int)(ended - started).TotalSeconds / 150);
            foreach (var panel in dashboard["panels"]!.AsArray())
            {
                var title = (string)panel!["title"]!;
                var plot = new Plot();
                plot.Title(title, size: 14);
                var palette = new ScottPlot.Palettes.Category10();
                var series = 0;
                foreach (var target in panel["targets"]!.AsArray())
                {
                    var expr = RateWindow().Replace((string)target!["expr"]!, $"[{window}s]");
                    foreach (var (labels, points) in await prom.QueryRangeAsync(expr, started, ended, step))
                    {
                        var line = plot.Add.Scatter(points.Select(p => (p.At - started).TotalSeconds).ToArray(), points.Select(p => p.Value).ToArray(), palette.GetColor(series++));
                        line.LegendText = Legend((string?)target["legendFormat"] ?? "", labels);
                        line.MarkerSize = 0;
                        line.LineWidth = 2;
                    }
                }
                if (series == 0) empty.Add(title);
                plot.XLabel("seconds into the run");
                plot.Axes.SetLimitsX(0, (ended - started).TotalSeconds);
                if (series > 0) plot.ShowLegend(Alignment.UpperLeft);
                charts.Add(plot.GetImageBytes(800, 400, ImageFormat.Png));
            }

            var outDir = Directory.CreateDirectory(Path.Combine(resultsDir, "dashboard")).FullName;
            var png = Path.Combine(outDir, "dashboard.png");
            Compose(charts, 2, 800, 400, png);
            var md = new StringBuilder();
            md.AppendLine("# dashboard");
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"`dotnet run -c Release --project bench -- dashboard {string.Join(' ', args)}` on {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC.");
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"The {charts.Count} panels of `k8s/monitoring/hybridserving-dashboard.json`, each its own PromQL with `[5m]` replaced by `[{window}s]`, asked of a real Prometheus (1 s scrapes) over a {minutes}-minute run of the AppHost's stack ({engines} engines, Autoscaler keeping 1 awake): {sent.Total} chat completions through the gateway ({sent.Failed} not 2xx), rising, bursting, falling, then idle.");
            md.AppendLine();
            md.AppendLine(empty.Count == 0 ? "Every panel drew data." : $"Panels without data in this run: {string.Join(", ", empty)}.");
            md.AppendLine();
            md.AppendLine("![dashboard](dashboard.png)");
            await File.WriteAllTextAsync(Path.Combine(outDir, "dashboard.md"), md.ToString());
            Progress.Log($"wrote {png}");
            return 0;
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Concurrency over the run: rise, burst, fall, idle (the Autoscaler wakes engines and lets them sleep again).</summary>
    private static int Concurrency(double fraction) => fraction switch
    {
        < 0.15 => 1,
        < 0.35 => 6,
        < 0.55 => 20,
        < 0.70 => 4,
        _ => 0,
    };

    private static async Task<(int Total, int Failed)> DriveAsync(Uri gateway, TimeSpan length)
    {
        using var http = new HttpClient { BaseAddress = gateway, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AspireStack.ApiKey);
        var total = 0;
        var failed = 0;
        var clock = Stopwatch.StartNew();
        var random = new Random(7);
        var weights = Models.Sum(m => m.Weight);
        var workers = new List<Task>();
        using var stop = new CancellationTokenSource(length);

        async Task WorkerAsync(int index)
        {
            while (!stop.IsCancellationRequested)
            {
                if (index >= Concurrency(clock.Elapsed / length))
                {
                    await Task.Delay(250, CancellationToken.None);
                    continue;
                }
                string model;
                int tokens;
                lock (random)
                {
                    var pick = random.NextDouble() * weights;
                    model = Models.First(m => (pick -= m.Weight) < 0).Model;
                    tokens = random.Next(16, 96);
                }
                var body = JsonSerializer.Serialize(new
                {
                    model,
                    stream = true,
                    max_tokens = tokens,
                    messages = new[] { new { role = "user", content = "Summarise the status of my order, please." } },
                });
                try
                {
                    using var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"), CancellationToken.None);
                    await response.Content.ReadAsStringAsync(CancellationToken.None);
                    Interlocked.Increment(ref total);
                    if (!response.IsSuccessStatusCode) Interlocked.Increment(ref failed);
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref total);
                    Interlocked.Increment(ref failed);
                }
            }
        }

        for (var i = 0; i < Concurrency(0.5); i++) workers.Add(WorkerAsync(i));
        await Task.WhenAll(workers);
        return (total, failed);
    }

    /// <summary>Grafana's legend format: <c>{{label}}</c> replaced by the series' label value.</summary>
    private static string Legend(string format, IReadOnlyDictionary<string, string> labels)
    {
        var text = LegendLabel().Replace(format, m => labels.GetValueOrDefault(m.Groups[1].Value, ""));
        return text.Length > 0 ? text : string.Join(",", labels.Select(l => $"{l.Key}={l.Value}"));
    }

    /// <summary>Draws the charts in a grid of <paramref name="columns"/> columns into one PNG.</summary>
    private static void Compose(IReadOnlyList<byte[]> charts, int columns, int width, int height, string path)
    {
        var rows = (charts.Count + columns - 1) / columns;
        using var surface = SKSurface.Create(new SKImageInfo(columns * width, rows * height));
        surface.Canvas.Clear(SKColors.White);
        for (var i = 0; i < charts.Count; i++)
        {
            using var image = SKImage.FromEncodedData(charts[i]);
            surface.Canvas.DrawImage(image, i % columns * width, i / columns * height);
        }
        using var snapshot = surface.Snapshot();
        using var data = snapshot.Encode(SKEncodedImageFormat.Png, 90);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    [GeneratedRegex(@"\[5m\]")]
    private static partial Regex RateWindow();

    [GeneratedRegex(@"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")]
    private static partial Regex LegendLabel();

    /// <summary>A real Prometheus scraping the given <c>/metrics</c> roots every second, its data in a temporary folder.</summary>
    private sealed class PrometheusProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly HttpClient _http;

        private PrometheusProcess(Process process, Uri url)
        {
            _process = process;
            Url = url;
            _http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(30) };
        }

        public Uri Url { get; }

        public static async Task<PrometheusProcess> StartAsync(string binary, string work, IEnumerable<Uri> targets)
        {
            var config = Path.Combine(work, "prometheus.yml");
            await File.WriteAllTextAsync(config, $$"""
                global:
                  scrape_interval: 1s
                  scrape_timeout: 1s
                scrape_configs:
                  - job_name: hybridserving
                    static_configs:
                      - targets: [{{string.Join(", ", targets.Select(t => $"'{t.Authority}'"))}}]
                """);
            var port = HybridServing.TestKit.Ports.GetFree();
            var psi = new ProcessStartInfo(binary)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in new[] { $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(work, "tsdb")}", $"--web.listen-address=127.0.0.1:{port}" })
                psi.ArgumentList.Add(arg);
            Process process;
            try
            {
                process = Process.Start(psi)!;
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new BenchUsageException($"--prometheus: cannot start '{binary}' ({e.Message}); install the Debian package prometheus or give its path");
            }
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var prom = new PrometheusProcess(process, new Uri($"http://127.0.0.1:{port}/"));
            for (var i = 0; i < 100; i++)
            {
                if (process.HasExited) throw new InvalidOperationException($"prometheus exited at start with code {process.ExitCode}");
                try
                {
                    using var ready = await prom._http.GetAsync("-/ready");
                    if (ready.IsSuccessStatusCode) return prom;
                }
                catch (HttpRequestException) { }
                await Task.Delay(200);
            }
            await prom.DisposeAsync();
            throw new InvalidOperationException("prometheus did not become ready within 20 s");
        }

        /// <summary>A range query's series: labels (without the name) and points.</summary>
        public async Task<List<(Dictionary<string, string> Labels, List<(DateTimeOffset At, double Value)> Points)>> QueryRangeAsync(
            string expr, DateTimeOffset start, DateTimeOffset end, int stepSeconds)
        {
            var query = $"api/v1/query_range?query={Uri.EscapeDataString(expr)}&start={start.ToUnixTimeSeconds()}&end={end.ToUnixTimeSeconds()}&step={stepSeconds}";
            using var response = await _http.GetAsync(query);
            var answer = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            if ((string?)answer["status"] != "success")
                throw new InvalidOperationException($"Prometheus refused a panel's query '{expr}': {answer["error"]}");
            var series = new List<(Dictionary<string, string>, List<(DateTimeOffset, double)>)>();
            foreach (var s in answer["data"]!["result"]!.AsArray())
            {
                var labels = s!["metric"]!.AsObject().Where(l => l.Key != "__name__").ToDictionary(l => l.Key, l => (string)l.Value!);
                var points = new List<(DateTimeOffset, double)>();
                foreach (var v in s["values"]!.AsArray())
                {
                    var value = double.Parse((string)v![1]!, CultureInfo.InvariantCulture);
                    if (double.IsFinite(value)) points.Add((DateTimeOffset.FromUnixTimeMilliseconds((long)((double)v[0]! * 1000)), value));
                }
                if (points.Count > 0) series.Add((labels, points));
            }
            return series;
        }

        public async ValueTask DisposeAsync()
        {
            _http.Dispose();
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
        }
    }
}
