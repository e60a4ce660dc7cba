using System.Globalization;
using System.Text.Json.Nodes;
using HybridServing.Bench.Cli;
using HybridServing.Bench.Hosting;
using HybridServing.Bench.Load;
using HybridServing.Bench.Results;

namespace HybridServing.Bench.Commands;

/// <summary>
/// <c>engine-rate</c>: the request rate one MockEngine sustains in <c>--mock-zero-latency</c>
/// mode, so that it is never the bottleneck of the gateway benchmark. The engine is a separate process;
/// the load generator shares the machine with it, so the figure is a lower bound of the engine's capacity.
/// </summary>
internal static class EngineRateCommand
{
    public const string Help = """
        engine-rate — requests/s one MockEngine (--mock-zero-latency, separate process) sustains under a closed-loop load.

        Options (defaults in brackets):
          --connections LIST   concurrent keep-alive connections, comma-separated [8,64]
          --duration S         measured seconds per run [5]
          --warmup S           unmeasured seconds before each run [1]
          --modes LIST         non-streaming,streaming [both]
          --max-tokens N       tokens per answer [16]
          --prompt-words N     words per prompt [32]
          --seed N             prompts and engine seed [1]
          --results DIR        results folder [bench/results]
        """;

    private static readonly HashSet<string> Valued = ["--connections", "--duration", "--warmup", "--modes", "--max-tokens", "--prompt-words", "--seed", "--results"];

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs("engine-rate", args, Valued, new HashSet<string>());
        var connections = a.IntList("--connections", [8, 64], 1, 10_000);
        var duration = a.Seconds("--duration", 5, 0.5);
        var warmup = a.Seconds("--warmup", 1, 0);
        var modes = Modes(a);
        var maxTokens = a.Int("--max-tokens", 16, 1, 1500);
        var promptWords = a.Int("--prompt-words", 32, 1, 1000);
        var seed = a.Int("--seed", 1, 0);
        var resultsDir = a.String("--results", RepoPaths.DefaultResults);

        var report = new BenchReport("engine-rate", a.Given);
        await using var services = new BenchServices();
        Progress.Log("Starting the engine...");
        var engine = await services.StartEngineAsync("engine", "bench-lora", zeroLatency: true, seed);
        var table = report.Table($"One MockEngine, --mock-zero-latency, adapter requests, {maxTokens} tokens per answer (client and engine share {Environment.ProcessorCount} cores)",
            "mode", "connections", "req/s", "P50 ms", "P90 ms", "P99 ms", "max ms", "errors", "engine CPU ms/request");
        var runs = new JsonArray();
        var best = new Dictionary<bool, double>();
        foreach (var stream in modes)
            foreach (var n in connections)
            {
                using var load = new LoadGenerator(engine.Url, new RequestShape("bench-lora", stream, maxTokens, promptWords, null, seed), n);
                var cpuBefore = engine.CpuTime();
                Progress.Log($"{(stream ? "streaming" : "non-streaming")}, {n} connections, {duration.TotalSeconds:0.#} s...");
                var r = await load.ClosedLoopAsync("engine", n, warmup, duration);
                var cpu = engine.CpuTime() - cpuBefore;
                // CPU over warm-up + run, per request completed in the whole span (approximately the rate x span).
                var cpuPerRequest = cpu.TotalMilliseconds / Math.Max(1, r.RequestsPerSecond * (warmup + duration).TotalSeconds);
                table.Add(stream ? "streaming" : "non-streaming", n.ToString(CultureInfo.InvariantCulture), Rate(r.RequestsPerSecond),
                    LatencyStats.Ms(r.Latency.P50), LatencyStats.Ms(r.Latency.P90), LatencyStats.Ms(r.Latency.P99), LatencyStats.Ms(r.Latency.Max),
                    r.Errors.ToString(CultureInfo.InvariantCulture), cpuPerRequest.ToString("0.000", CultureInfo.InvariantCulture));
                if (r.FirstError is not null) report.Notes.Add($"{(stream ? "streaming" : "non-streaming")}/{n}: first error: {r.FirstError}");
                best[stream] = Math.Max(best.GetValueOrDefault(stream), r.RequestsPerSecond);
                runs.Add(Json(r, stream, n, cpuPerRequest));
            }
        foreach (var (stream, rate) in best)
            report.Targets.Add(new TargetCheck($"MockEngine sustained rate, {(stream ? "streaming" : "non-streaming")} (best of the connection counts)",
                Rate(rate) + " req/s", "well above the gateway's (gateway-overhead); a lower bound: the client shares the cores", null));
        report.Data["runs"] = runs;
        report.Notes.Add("The load generator runs on the same cores as the engine: the engine alone sustains more. Engine CPU ms/request = engine process CPU time / requests; 1000 / that is the rate one fully used core would give.");
        report.Write(resultsDir);
        return 0;
    }

    internal static IReadOnlyList<bool> Modes(BenchArgs a)
    {
        var text = a.String("--modes", "non-streaming,streaming");
        var modes = new List<bool>();
        foreach (var m in text.Split(',', StringSplitOptions.TrimEntries))
            modes.Add(m switch
            {
                "non-streaming" => false,
                "streaming" => true,
                _ => throw new BenchUsageException($"--modes: '{m}' is not non-streaming or streaming"),
            });
        return modes.Distinct().ToList();
    }

    /// <summary>JSON has no NaN: a figure that could not be measured is null.</summary>
    internal static double? J(double v) => double.IsFinite(v) ? v : null;

    internal static string Rate(double r) => r.ToString("0", CultureInfo.InvariantCulture);

    internal static JsonObject Json(LoadResult r, bool stream, int? connections, double? cpuPerRequest = null) => new()
    {
        ["target"] = r.Target,
        ["mode"] = r.Mode,
        ["stream"] = stream,
        ["connections"] = connections,
        ["seconds"] = r.Duration.TotalSeconds,
        ["completed"] = r.Completed,
        ["errors"] = r.Errors,
        ["requestsPerSecond"] = r.RequestsPerSecond,
        ["latencyMs"] = new JsonObject
        {
            ["mean"] = J(r.Latency.Mean), ["p50"] = J(r.Latency.P50), ["p90"] = J(r.Latency.P90), ["p99"] = J(r.Latency.P99), ["p999"] = J(r.Latency.P999), ["max"] = J(r.Latency.Max),
        },
        ["firstByteMs"] = new JsonObject { ["p50"] = J(r.FirstByte.P50), ["p99"] = J(r.FirstByte.P99) },
        ["engineCpuMsPerRequest"] = cpuPerRequest,
        ["firstError"] = r.FirstError,
    };
}
