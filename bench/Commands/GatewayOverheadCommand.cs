using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using HybridServing.Bench.Cli;
using HybridServing.Bench.Hosting;
using HybridServing.Bench.Load;
using HybridServing.Bench.Results;
using HybridServing.TestKit;

namespace HybridServing.Bench.Commands;

/// <summary>
/// <c>gateway-overhead</c> (docs/benchmarks.md §2): the same load against the engine directly,
/// a plain YARP pass-through and the HybridServing Gateway with full routing (tenant API key, model
/// resolution, endpoint picking, metrics), all in one run; then the gateway's working set with many
/// concurrent streams held open, against the pass-through's.
/// </summary>
internal static class GatewayOverheadCommand
{
    public const string Help = """
        gateway-overhead — docs/benchmarks.md §2: client -> engine, client -> YARP pass-through, client -> Gateway, same run.
        Targets: added latency P50 <= 0.5 ms and P99 <= 2 ms at a moderate fixed rate (open loop); throughput
        >= 0.8 x the pass-through (closed loop); gateway working set <= 200 MB with 1,000 concurrent streams.

        Options (defaults in brackets):
          --connections N        closed-loop connections for throughput [32]
          --rate R               open-loop requests/s for latency [200]
          --duration S           measured seconds per target and mode [4]
          --warmup S             unmeasured seconds before each measurement [1]
          --prewarm S            closed-loop seconds per target and mode before any measurement (JIT, pools) [2]
          --rounds N             repeat the target sequence, report medians [1]
          --modes LIST           non-streaming,streaming [both]
          --max-tokens N         tokens per answer [16]
          --prompt-words N       words per prompt [32]
          --streams N            concurrent streams for the memory figure, 0 = skip [1000]
          --stream-max-tokens N  tokens per held stream (long, so streams stay open) [1500]
          --stream-time-scale F  the streaming engine's --mock-time-scale (tiny profile; lower = slower tokens) [0.05]
          --gateway-env LIST     extra environment for the gateway process, K=V,K=V (e.g. DOTNET_gcServer=0) []
          --hold S               seconds the streams are held open while memory is sampled [5]
          --seed N               prompts and engine seeds [1]
          --results DIR          results folder [bench/results]
        """;

    private static readonly HashSet<string> Valued =
    [
        "--connections", "--rate", "--duration", "--warmup", "--prewarm", "--rounds", "--modes", "--max-tokens", "--prompt-words",
        "--streams", "--stream-max-tokens", "--stream-time-scale", "--gateway-env", "--hold", "--seed", "--results",
    ];

    private const string Adapter = "bench-lora";
    private const string StreamAdapter = "bench-stream";

    private sealed record Target(string Name, Uri Url, ChildProcess Process);

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs("gateway-overhead", args, Valued, new HashSet<string>());
        var connections = a.Int("--connections", 32, 1, 10_000);
        var rate = a.Double("--rate", 200, 1, 100_000);
        var duration = a.Seconds("--duration", 4, 0.5);
        var warmup = a.Seconds("--warmup", 1, 0);
        var prewarm = a.Seconds("--prewarm", 2, 0);
        var rounds = a.Int("--rounds", 1, 1, 100);
        var modes = EngineRateCommand.Modes(a);
        var maxTokens = a.Int("--max-tokens", 16, 1, 1500);
        var promptWords = a.Int("--prompt-words", 32, 1, 1000);
        var streams = a.Int("--streams", 1000, 0, 20_000);
        var streamMaxTokens = a.Int("--stream-max-tokens", 1500, 1, 1990);
        var streamTimeScale = a.Double("--stream-time-scale", 0.05, 1e-6, 1000);
        var gatewayEnv = EnvList(a.String("--gateway-env", ""));
        var hold = a.Seconds("--hold", 5, 0.5);
        var seed = a.Int("--seed", 1, 0);
        var resultsDir = a.String("--results", RepoPaths.DefaultResults);

        var serverGc = gatewayEnv.TryGetValue("DOTNET_gcServer", out var gc) ? gc is "1" or "true" : BenchServices.GatewayUsesServerGc();
        var report = new BenchReport("gateway-overhead", a.Given);
        await using var services = new BenchServices();
        Progress.Log("Starting engine, pass-through, router and gateway...");
        var engine = await services.StartEngineAsync("engine", Adapter, zeroLatency: true, seed);
        var passThrough = await services.StartPassThroughAsync(engine.Url, serverGc);
        List<(Uri, string)> tableEngines = [(engine.Url, Adapter)];
        ChildProcess? streamEngine = null, streamPassThrough = null;
        if (streams > 0)
        {
            // Streams must stay open: a real-time engine (tiny profile, slowed down) with room for all of them.
            streamEngine = await services.StartEngineAsync("stream-engine", StreamAdapter, zeroLatency: false, seed + 1,
                "--mock-profile", "tiny", "--mock-time-scale", streamTimeScale.ToString(CultureInfo.InvariantCulture),
                "--max-num-seqs", Math.Max(256, streams).ToString(CultureInfo.InvariantCulture),
                "--mock-kv-blocks", Math.Max(100_000, streams * 200).ToString(CultureInfo.InvariantCulture));
            streamPassThrough = await services.StartPassThroughAsync(streamEngine.Url, serverGc);
            tableEngines.Add((streamEngine.Url, StreamAdapter));
        }
        var router = await services.StartRouterAsync(FakeRouter.Table(BenchServices.BaseModel, BenchServices.Namespace, tableEngines));
        var gateway = await services.StartGatewayAsync(router.Url, gatewayEnv);

        Target[] targets = [new("direct", engine.Url, engine), new("pass-through", passThrough.Url, passThrough), new("gateway", gateway.Url, gateway)];
        await SanityCheckAsync(targets, seed);
        if (prewarm > TimeSpan.Zero)
            foreach (var stream in modes)
                foreach (var t in targets)
                {
                    Progress.Log($"pre-warm {Mode(stream)}, {t.Name}: {prewarm.TotalSeconds:0.#} s (not measured)...");
                    using var load = new LoadGenerator(t.Url, new RequestShape(Adapter, stream, maxTokens, promptWords, BenchServices.TenantApiKey, seed), connections);
                    await load.ClosedLoopAsync(t.Name, connections, prewarm, TimeSpan.Zero);
                }

        var throughput = new Dictionary<(bool, string), List<(LoadResult R, double CpuMs)>>();
        var latency = new Dictionary<(bool, string), List<LoadResult>>();
        for (var round = 1; round <= rounds; round++)
            foreach (var stream in modes)
            {
                var shape = new RequestShape(Adapter, stream, maxTokens, promptWords, BenchServices.TenantApiKey, seed);
                // Rotate the order each round so that no target always runs first (or right after a GC-heavy one).
                var order = targets.Skip((round - 1) % targets.Length).Concat(targets.Take((round - 1) % targets.Length)).ToArray();
                foreach (var t in order)
                {
                    using var load = new LoadGenerator(t.Url, shape, connections);
                    Progress.Log($"round {round}, {Mode(stream)}, {t.Name}: closed loop, {connections} connections, {duration.TotalSeconds:0.#} s...");
                    var cpuBefore = t.Process.CpuTime();
                    var r = await load.ClosedLoopAsync(t.Name, connections, warmup, duration);
                    var cpuMs = (t.Process.CpuTime() - cpuBefore).TotalMilliseconds / Math.Max(1, r.RequestsPerSecond * (warmup + duration).TotalSeconds);
                    Add(throughput, (stream, t.Name), (r, cpuMs));
                    if (r.FirstError is not null) report.Notes.Add($"round {round} {Mode(stream)} {t.Name} closed loop: {r.Errors} errors, first: {r.FirstError}");
                }
                foreach (var t in order)
                {
                    using var load = new LoadGenerator(t.Url, shape, 1024);
                    Progress.Log($"round {round}, {Mode(stream)}, {t.Name}: open loop, {rate:0.#} req/s, {duration.TotalSeconds:0.#} s...");
                    var r = await load.OpenLoopAsync(t.Name, rate, warmup, duration);
                    Add(latency, (stream, t.Name), r);
                    if (r.FirstError is not null) report.Notes.Add($"round {round} {Mode(stream)} {t.Name} open loop: {r.Errors} errors, first: {r.FirstError}");
                }
            }

        var tput = report.Table($"Throughput: closed loop, {connections} connections, {duration.TotalSeconds:0.#} s per target{(rounds > 1 ? $", median of {rounds} rounds" : "")}",
            "mode", "target", "req/s", "÷ direct", "÷ pass-through", "P50 ms", "P99 ms", "errors", "server CPU ms/req");
        var lat = report.Table($"Latency: open loop at {rate:0.#} req/s, {duration.TotalSeconds:0.#} s per target (timed from the scheduled send){(rounds > 1 ? $", median of {rounds} rounds" : "")}",
            "mode", "target", "P50 ms", "P90 ms", "P99 ms", "added P50 vs direct", "added P99 vs direct", "added P50 / P99 vs pass-through", "errors");
        var runs = new JsonArray();
        foreach (var stream in modes)
        {
            double Rps(string t) => Median(throughput[(stream, t)].Select(x => x.R.RequestsPerSecond));
            foreach (var t in targets)
            {
                var list = throughput[(stream, t.Name)];
                tput.Add(Mode(stream), t.Name, EngineRateCommand.Rate(Rps(t.Name)), Ratio(Rps(t.Name) / Rps("direct")), Ratio(Rps(t.Name) / Rps("pass-through")),
                    LatencyStats.Ms(Median(list.Select(x => x.R.Latency.P50))), LatencyStats.Ms(Median(list.Select(x => x.R.Latency.P99))),
                    list.Sum(x => x.R.Errors).ToString(CultureInfo.InvariantCulture), Median(list.Select(x => x.CpuMs)).ToString("0.000", CultureInfo.InvariantCulture));
                foreach (var (r, cpu) in list) runs.Add(EngineRateCommand.Json(r, stream, connections, cpu));
            }
            double P(string t, Func<LatencyStats, double> f) => Median(latency[(stream, t)].Select(r => f(r.Latency)));
            foreach (var t in targets)
            {
                var list = latency[(stream, t.Name)];
                lat.Add(Mode(stream), t.Name, LatencyStats.Ms(P(t.Name, s => s.P50)), LatencyStats.Ms(P(t.Name, s => s.P90)), LatencyStats.Ms(P(t.Name, s => s.P99)),
                    t.Name == "direct" ? "—" : Added(P(t.Name, s => s.P50) - P("direct", s => s.P50)),
                    t.Name == "direct" ? "—" : Added(P(t.Name, s => s.P99) - P("direct", s => s.P99)),
                    t.Name == "gateway" ? $"{Added(P(t.Name, s => s.P50) - P("pass-through", s => s.P50))} / {Added(P(t.Name, s => s.P99) - P("pass-through", s => s.P99))}" : "—",
                    list.Sum(x => x.Errors).ToString(CultureInfo.InvariantCulture));
                foreach (var r in list) runs.Add(EngineRateCommand.Json(r, stream, null));
            }
            var addedP50 = P("gateway", s => s.P50) - P("direct", s => s.P50);
            var addedP99 = P("gateway", s => s.P99) - P("direct", s => s.P99);
            var ratio = Rps("gateway") / Rps("pass-through");
            report.Targets.Add(new TargetCheck($"{Mode(stream)}: added latency P50 (gateway − direct, {rate:0} req/s)", Added(addedP50), "<= 0.5 ms", addedP50 <= 0.5));
            report.Targets.Add(new TargetCheck($"{Mode(stream)}: added latency P99 (gateway − direct, {rate:0} req/s)", Added(addedP99), "<= 2 ms", addedP99 <= 2));
            report.Targets.Add(new TargetCheck($"{Mode(stream)}: throughput gateway ÷ pass-through", Ratio(ratio), ">= 0.8", ratio >= 0.8));
            report.Data[$"{Mode(stream)}"] = new JsonObject
            {
                ["addedP50Ms"] = addedP50, ["addedP99Ms"] = addedP99, ["throughputVsPassThrough"] = ratio,
                ["throughputVsDirect"] = Rps("gateway") / Rps("direct"), ["passThroughVsDirect"] = Rps("pass-through") / Rps("direct"),
            };
        }
        report.Data["runs"] = runs;

        if (streams > 0)
        {
            var mem = report.Table($"Memory: {streams} concurrent streams (max_tokens {streamMaxTokens}) held {hold.TotalSeconds:0.#} s; working set = VmRSS of the proxy process",
                "process", "idle MB", "peak MB with streams", "added MB", "KB per stream", "streams with first byte", "still open at end of hold");
            var memData = new JsonObject();
            double? gatewayPeak = null, passPeak = null;
            foreach (var (name, process, url) in new[] { ("pass-through", streamPassThrough!, streamPassThrough!.Url), ("gateway", gateway, gateway.Url) })
            {
                Progress.Log($"memory: {streams} streams through the {name}, held {hold.TotalSeconds:0.#} s...");
                var m = await HoldStreamsAsync(process, url, streams, streamMaxTokens, seed, hold);
                mem.Add(name, Mb(m.Idle), Mb(m.Peak), Mb(m.Peak - m.Idle), ((m.Peak - m.Idle) / 1024.0 / streams).ToString("0", CultureInfo.InvariantCulture),
                    $"{m.FirstBytes}/{streams}", m.OpenAtEnd.ToString(CultureInfo.InvariantCulture));
                if (m.Error is not null) report.Notes.Add($"memory {name}: {m.Error}");
                memData[name] = new JsonObject
                {
                    ["idleBytes"] = m.Idle, ["peakBytes"] = m.Peak, ["firstBytes"] = m.FirstBytes, ["openAtEnd"] = m.OpenAtEnd, ["error"] = m.Error,
                };
                if (name == "gateway") gatewayPeak = m.Peak / 1048576.0; else passPeak = m.Peak / 1048576.0;
                var allOpen = m.FirstBytes == streams && m.OpenAtEnd == streams;
                if (name == "gateway")
                    report.Targets.Add(new TargetCheck($"gateway working set with {streams} concurrent streams",
                        $"{gatewayPeak:0} MB (pass-through {passPeak:0} MB, ×{gatewayPeak / passPeak:0.0})", "<= 200 MB (1,000 streams)",
                        allOpen ? gatewayPeak <= 200 : null));
                if (!allOpen) report.Notes.Add($"memory {name}: not every stream was open through the whole hold ({m.FirstBytes} got a first byte, {m.OpenAtEnd} open at the end); the figure is not judged.");
            }
            report.Data["memory"] = memData;
        }
        report.Notes.Add($"Engine: MockEngine --mock-zero-latency (separate process); every request is for adapter '{Adapter}' (resident), authenticated with a tenant API key (ignored by engine and pass-through). Gateway: full routing from an in-bench AdapterRouter (one table, never changing), default configuration (metrics scraping, hybrid picker, tenancy)"
            + (gatewayEnv.Count > 0 ? $", extra environment {string.Join(", ", gatewayEnv.Select(e => $"{e.Key}={e.Value}"))}" : "")
            + $". The pass-through runs with the gateway's GC mode (server GC: {serverGc}).");
        report.Notes.Add($"Load generator, engine and proxies share {Environment.ProcessorCount} cores: throughput figures are for comparison within the run only. Server CPU ms/req = CPU time of the process behind the target (engine for direct, the proxy otherwise) per request.");
        report.Write(resultsDir);
        return 0;
    }

    private static async Task SanityCheckAsync(IEnumerable<Target> targets, int seed)
    {
        foreach (var t in targets)
            foreach (var stream in new[] { false, true })
            {
                using var load = new LoadGenerator(t.Url, new RequestShape(Adapter, stream, 4, 4, BenchServices.TenantApiKey, seed), 1);
                var (ok, _, _, error) = await load.SendAsync(0);
                if (!ok) throw new InvalidOperationException($"{t.Name} ({t.Url}) did not answer a {Mode(stream)} request for '{Adapter}': {error}");
            }
    }

    private sealed record MemoryRun(long Idle, long Peak, int FirstBytes, int OpenAtEnd, string? Error);

    private static async Task<MemoryRun> HoldStreamsAsync(ChildProcess process, Uri url, int streams, int maxTokens, int seed, TimeSpan hold)
    {
        // Short prompts: the streams should reach their first token quickly and then flow slowly.
        using var load = new LoadGenerator(url, new RequestShape(StreamAdapter, true, maxTokens, 4, BenchServices.TenantApiKey, seed), streams + 8);
        // Idle: after a few short requests (connections, JIT and pools warmed), before the streams.
        using (var warm = new LoadGenerator(url, new RequestShape(StreamAdapter, true, 2, 4, BenchServices.TenantApiKey, seed), 4))
            for (var i = 0; i < 8; i++) await warm.SendAsync(i, CancellationToken.None);
        await Task.Delay(500);
        var idle = process.WorkingSetBytes();
        using var cts = new CancellationTokenSource();
        var firstBytes = 0;
        var completed = 0;
        string? error = null;
        var tasks = new List<Task>(streams);
        for (var i = 0; i < streams; i++)
        {
            tasks.Add(Task.Run(async () =>
            {
                try
                {
                    var (ok, _, _, e) = await load.SendAsync(i, cts.Token, () => Interlocked.Increment(ref firstBytes));
                    if (!ok) Interlocked.CompareExchange(ref error, e, null);
                }
                catch (OperationCanceledException) { }
                finally { Interlocked.Increment(ref completed); }
            }));
            // Ramp in batches so the listen backlog is not overrun (SYN retries would add seconds).
            if (i % 50 == 49) await Task.Delay(25);
        }
        var wait = Stopwatch.StartNew();
        while (Volatile.Read(ref firstBytes) + Volatile.Read(ref completed) < streams && wait.Elapsed < TimeSpan.FromSeconds(60)) await Task.Delay(100);
        var first = Volatile.Read(ref firstBytes);
        long peak = process.WorkingSetBytes();
        var holdTimer = Stopwatch.StartNew();
        while (holdTimer.Elapsed < hold)
        {
            await Task.Delay(200);
            peak = Math.Max(peak, process.WorkingSetBytes());
        }
        var openAtEnd = streams - Volatile.Read(ref completed);
        await cts.CancelAsync();
        await Task.WhenAll(tasks);
        return new MemoryRun(idle, peak, first, openAtEnd, error);
    }

    private static Dictionary<string, string> EnvList(string text)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = item.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0) throw new BenchUsageException($"--gateway-env: '{item}' is not KEY=VALUE");
            env[item[..eq]] = item[(eq + 1)..];
        }
        return env;
    }

    private static void Add<TK, TV>(Dictionary<TK, List<TV>> d, TK key, TV value) where TK : notnull
    {
        if (!d.TryGetValue(key, out var list)) d[key] = list = [];
        list.Add(value);
    }

    private static double Median(IEnumerable<double> values)
    {
        var a = values.Where(double.IsFinite).Order().ToArray();
        return a.Length == 0 ? double.NaN : a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }

    private static string Mode(bool stream) => stream ? "streaming" : "non-streaming";
    private static string Ratio(double r) => double.IsFinite(r) ? "×" + r.ToString("0.00", CultureInfo.InvariantCulture) : "—";
    private static string Added(double ms) => double.IsFinite(ms) ? (ms >= 0 ? "+" : "") + ms.ToString("0.000", CultureInfo.InvariantCulture) + " ms" : "—";
    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("0", CultureInfo.InvariantCulture);
}
