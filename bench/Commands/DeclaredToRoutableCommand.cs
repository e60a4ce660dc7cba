using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Grpc.Net.Client;
using HybridServing.Bench.Cli;
using HybridServing.Bench.Hosting;
using HybridServing.Bench.Load;
using HybridServing.Bench.Results;
using HybridServing.Hosting;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Contracts.Peft;

namespace HybridServing.Bench.Commands;

/// <summary>
/// <c>declared-to-routable</c> (docs/benchmarks.md §3): the time from writing a new <c>LoraAdapter</c>
/// manifest whose adapter sits on local disk (a warm cache) until the ControlPlane's routing table
/// shows it LOADED on every engine it was placed on — what a gateway needs to route to it. The
/// stack is the AppHost's own Aspire app model (<see cref="AspireStack"/>: MockEngines, sidecars,
/// ControlPlane local home, Gateway, each a process). The baseline, in the same run, is the engine alone: a
/// <c>/v1/load_lora_adapter</c> call straight to one MockEngine for an adapter of the same size.
/// </summary>
internal static class DeclaredToRoutableCommand
{
    public const string Help = """
        declared-to-routable — new LoraAdapter manifest -> LOADED on all its target engines in the routing table (AppHost's local stack).

        Options (defaults in brackets):
          --engines N        MockEngines, each with its sidecar [4]
          --adapters N       adapters declared one at a time, each waiting for the previous [30]
          --burst N          adapters then declared at once, as N manifests in one go [10]
          --replicas N       replicas per adapter (min = max) [2]
          --rank N           LoRA rank of every adapter (real PEFT files for the base model's shapes) [8]
          --base-model NAME  base model the engines serve [meta-llama/Llama-3.1-8B-Instruct]
          --timeout S        give up on one adapter after this many seconds [30]
          --seed N           adapter weights [1]
          --results DIR      results folder [bench/results]
        """;

    private static readonly HashSet<string> Valued = ["--engines", "--adapters", "--burst", "--replicas", "--rank", "--base-model", "--timeout", "--seed", "--results"];

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs("declared-to-routable", args, Valued, new HashSet<string>());
        var engines = a.Int("--engines", 4, 1, 32);
        var sequential = a.Int("--adapters", 30, 1, 1000);
        var burst = a.Int("--burst", 10, 0, 1000);
        var replicas = a.Int("--replicas", 2, 1, 32);
        if (replicas > engines) throw new BenchUsageException($"--replicas: {replicas} is more than --engines ({engines})");
        var rank = a.Int("--rank", 8, 1, 64);
        var baseModel = a.String("--base-model", EnginePoolOptions.DefaultBaseModel);
        var timeout = a.Seconds("--timeout", 30, 1);
        var seed = a.Int("--seed", 1, 0);
        var resultsDir = a.String("--results", RepoPaths.DefaultResults);
        BaseModelShape shape;
        try { shape = BaseModelShape.For(baseModel); }
        catch (ArgumentException e) { throw new BenchUsageException($"--base-model: {e.Message}"); }

        var work = Path.Combine(Path.GetTempPath(), "hybridserving-bench", "declared-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        var manifests = Directory.CreateDirectory(Path.Combine(work, "manifests")).FullName;
        var adapters = Directory.CreateDirectory(Path.Combine(work, "adapters")).FullName;
        var log = Path.Combine(work, "stack.log");
        try
        {
            var names = Enumerable.Range(0, sequential + burst + 1).Select(i => $"bench-{i:D4}").ToList();
            Progress.Log($"writing {names.Count} PEFT adapters (rank {rank}, {baseModel} shapes) to {adapters}");
            foreach (var (name, i) in names.Select((n, i) => (n, i)))
                PeftAdapterWriter.Write(Path.Combine(adapters, name), shape, rank, ["q_proj", "v_proj"], seed * 7919 + i);
            var size = Directory.GetFiles(Path.Combine(adapters, names[0])).Sum(f => new FileInfo(f).Length);

            const int maxLoras = 4;
            var maxCpuLoras = Math.Max(8, (sequential + burst) * replicas / engines + 4);
            Progress.Log($"starting the AppHost: {engines} engines + sidecars, ControlPlane, Gateway (logs: {log})");
            await using var stack = await AspireStack.StartAsync([
                    "--manifests", manifests, "--adapter-root", adapters, "--base-model", baseModel,
                    "--engines", engines.ToString(CultureInfo.InvariantCulture), .. AspireStack.PortArgs(engines),
                    "--max-loras", maxLoras.ToString(CultureInfo.InvariantCulture), "--max-cpu-loras", maxCpuLoras.ToString(CultureInfo.InvariantCulture),
                    "--state-dir", Path.Combine(work, "state")],
                new Dictionary<string, IReadOnlyDictionary<string, string>>(), log, TimeSpan.FromMinutes(3), CancellationToken.None);

            using var watcher = new RouteWatcher(stack.Endpoint("controlplane", "grpc"));
            var report = new BenchReport("declared-to-routable", a.Given);
            report.Notes.Add($"{engines} MockEngines (max_loras {maxLoras}, max_cpu_loras {maxCpuLoras}), one sidecar each, ControlPlane local home, Gateway: each a process on {Environment.ProcessorCount} shared cores. Adapters rank {rank} for {baseModel}, {size / 1e6:0.0} MB each, on local disk; replicas {replicas}.");
            report.Notes.Add("Declared = the manifest file is renamed into the watched folder; routable = the routing table the ControlPlane streams to gateways (WatchRoutes) lists the adapter LOADED on all its target engines. Manifest detection is part of the figure (file-system watcher with a polling fallback).");

            Progress.Log($"sequential: {sequential} adapters, one at a time");
            var seqTimes = new List<double>();
            for (var i = 0; i < sequential; i++)
                seqTimes.Add((await DeclareAndWaitAsync(manifests, adapters, [names[i]], baseModel, replicas, watcher, timeout))[0]);
            Progress.Log($"burst: {burst} adapters declared at once");
            var burstTimes = burst > 0
                ? await DeclareAndWaitAsync(manifests, adapters, names.GetRange(sequential, burst), baseModel, replicas, watcher, timeout)
                : [];

            // Baseline: the engine alone loading an adapter of the same size from the same disk.
            var engineUrl = stack.Endpoint("engine-0");
            var baseline = new List<double>();
            using (var http = new HttpClient { BaseAddress = engineUrl, Timeout = timeout })
            {
                var path = Path.Combine(adapters, names[^1]);
                for (var i = 0; i < Math.Max(5, sequential / 2); i++)
                {
                    var name = $"baseline-{i}";
                    var sw = Stopwatch.StartNew();
                    using var response = await http.PostAsJsonAsync("v1/load_lora_adapter", new { lora_name = name, lora_path = path });
                    baseline.Add(sw.Elapsed.TotalMilliseconds);
                    if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"baseline load failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                    using var _ = await http.PostAsJsonAsync("v1/unload_lora_adapter", new { lora_name = name });
                }
            }

            var seq = new LatencyStats(seqTimes.Where(double.IsFinite));
            var bur = new LatencyStats(burstTimes.Where(double.IsFinite));
            var eng = new LatencyStats(baseline);
            var all = new LatencyStats(seqTimes.Concat(burstTimes).Where(double.IsFinite));
            var missed = seqTimes.Concat(burstTimes).Count(t => !double.IsFinite(t));
            var table = report.Table("Declared -> routable on all target engines (ms)", "case", "adapters", "P50", "P90", "P99", "max", "not routable in time");
            table.Add("one at a time", seqTimes.Count.ToString(CultureInfo.InvariantCulture), LatencyStats.Ms(seq.P50), LatencyStats.Ms(seq.P90), LatencyStats.Ms(seq.P99), LatencyStats.Ms(seq.Max), seqTimes.Count(t => !double.IsFinite(t)).ToString(CultureInfo.InvariantCulture));
            table.Add($"{burst} at once", burstTimes.Count.ToString(CultureInfo.InvariantCulture), LatencyStats.Ms(bur.P50), LatencyStats.Ms(bur.P90), LatencyStats.Ms(bur.P99), LatencyStats.Ms(bur.Max), burstTimes.Count(t => !double.IsFinite(t)).ToString(CultureInfo.InvariantCulture));
            table.Add("baseline: engine load_lora_adapter alone", baseline.Count.ToString(CultureInfo.InvariantCulture), LatencyStats.Ms(eng.P50), LatencyStats.Ms(eng.P90), LatencyStats.Ms(eng.P99), LatencyStats.Ms(eng.Max), "0");
            var p99 = missed > 0 ? double.PositiveInfinity : all.P99;
            report.Targets.Add(new TargetCheck("declared -> routable P99 (all adapters, warm local cache)",
                double.IsFinite(p99) ? $"{p99 / 1000:0.000} s ({p99 / Math.Max(eng.P99, 1e-9):0.#}x the engine's own load P99)" : $"{missed} adapter(s) not routable within {timeout.TotalSeconds:0} s",
                "<= 2 s", p99 <= 2000));
            report.Data["sequentialMs"] = new JsonArray([.. seqTimes.Select(t => (JsonNode?)EngineRateCommand.J(t))]);
            report.Data["burstMs"] = new JsonArray([.. burstTimes.Select(t => (JsonNode?)EngineRateCommand.J(t))]);
            report.Data["engineLoadMs"] = new JsonArray([.. baseline.Select(t => (JsonNode?)t)]);
            report.Write(resultsDir);
            return 0;
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); }
            catch (IOException) { }
        }
    }

    /// <summary>Writes one manifest per adapter (renamed into place), then waits for each to be routable; ms per adapter, ∞ when it timed out.</summary>
    private static async Task<List<double>> DeclareAndWaitAsync(string manifests, string adapters, IReadOnlyList<string> names, string baseModel,
        int replicas, RouteWatcher watcher, TimeSpan timeout)
    {
        var waits = names.Select(n => watcher.WaitRoutable(n, replicas)).ToList();
        var started = Stopwatch.GetTimestamp();
        foreach (var name in names)
        {
            var temp = Path.Combine(manifests, $".{name}.tmp");
            await File.WriteAllTextAsync(temp, $"""
                apiVersion: hybridserving.io/v1alpha1
                kind: LoraAdapter
                metadata:
                  name: {name}
                  namespace: default
                spec:
                  baseModel: {baseModel}
                  adapterSource:
                    type: local
                    repository: {adapters}
                    adapters: [{name}]
                  deploymentConfig:
                    replicas:
                      min: {replicas}
                      max: {replicas}
                """);
            File.Move(temp, Path.Combine(manifests, name + ".yaml"));
        }
        var times = new List<double>();
        foreach (var wait in waits)
        {
            var done = await Task.WhenAny(wait, Task.Delay(timeout));
            times.Add(done == wait ? Stopwatch.GetElapsedTime(started, await wait).TotalMilliseconds : double.PositiveInfinity);
        }
        return times;
    }

    /// <summary>Follows the ControlPlane's routing stream as a gateway does and notes when each adapter first becomes routable.</summary>
    private sealed class RouteWatcher : IDisposable
    {
        private readonly GrpcChannel _channel;
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentDictionary<string, (int Replicas, TaskCompletionSource<long> Done)> _waiting = new(StringComparer.Ordinal);

        public RouteWatcher(Uri controlPlane)
        {
            _channel = GrpcChannel.ForAddress(controlPlane);
            _ = Task.Run(FollowAsync);
        }

        /// <summary>Completes with the Stopwatch timestamp of the first table showing <paramref name="name"/> LOADED on <paramref name="replicas"/> engines.</summary>
        public Task<long> WaitRoutable(string name, int replicas)
        {
            var tcs = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting[name] = (replicas, tcs);
            return tcs.Task;
        }

        private async Task FollowAsync()
        {
            var client = new AdapterRouter.AdapterRouterClient(_channel);
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    using var call = client.WatchRoutes(new WatchRoutesRequest { Gateway = "bench" }, cancellationToken: _stop.Token);
                    while (await call.ResponseStream.MoveNext(_stop.Token))
                    {
                        var now = Stopwatch.GetTimestamp();
                        foreach (var route in call.ResponseStream.Current.Adapters)
                            if (_waiting.TryGetValue(route.Name, out var w) && route.Endpoints.Count(e => e.Residency == Residency.Loaded) >= w.Replicas)
                                w.Done.TrySetResult(now);
                    }
                }
                catch (Exception) when (!_stop.IsCancellationRequested)
                {
                    await Task.Delay(200);
                }
                catch (Exception)
                {
                    return;
                }
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _channel.Dispose();
            _stop.Dispose();
        }
    }
}
