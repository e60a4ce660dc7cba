using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using HybridServing.Bench.Churn;
using HybridServing.Bench.Cli;
using HybridServing.Bench.Hosting;
using HybridServing.Bench.Results;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using HybridServing.KubeApiTestServer.Diagnostics;
using k8s;
using k8s.Models;

namespace HybridServing.Bench.Commands;

/// <summary>
/// <c>churn</c> (docs/benchmarks.md §3): declare many adapters at once in a Kubernetes cluster and measure
/// how long the ControlPlane's Kubernetes home takes to place and load them all and report them Ready,
/// and how many mutating Kubernetes API calls it makes on the way (the target is batching per engine
/// and per object, not per adapter). The cluster is the stateful Kubernetes API test server; the engines
/// are pods whose sidecars are simulated (<see cref="SidecarFleet"/>, no GPU); the ControlPlane runs
/// in-process from its own composition root. The baseline, in the same run, is what per-adapter
/// batching would cost: one status write and one sidecar call per adapter.
/// </summary>
internal static class ChurnCommand
{
    public const string Help = """
        churn — adapters declared at once in a Kubernetes cluster until all are Ready: time, and the ControlPlane's mutating API calls per second.

        Options (defaults in brackets):
          --adapters N        adapters declared [10000]
          --engines N         engine pods, each with a simulated sidecar (no GPU engine behind it) [64]
          --per-resource N    adapters per LoraAdapter object (an explicit adapters: list) [100]
          --max-cpu-loras N   max_cpu_loras the sidecars report (max_loras is 8): each engine holds max(8, N) adapters [256]
          --load-delay S      a sidecar reports a new adapter LOADED this long after EnsureAdapters (x0.5-1.5, seeded) [0.5]
          --timeout S         stop waiting for Ready after this many seconds [300]
          --tail S            after Ready, keep counting calls until the ControlPlane has written nothing but its Lease for 3 s, at most this long (≤ 3600; with --adapter-services give it the Services' time) [30]
          --adapter-services  turn on ControlPlane:Kubernetes:AdapterServices (a Service and an EndpointSlice per loaded adapter)
          --seed N            adapter weights and the sidecars' load-delay jitter [1]
          --results DIR       results folder [bench/results]
        """;

    private const string BaseModel = "test/tiny";
    private const string Namespace = "default";
    private const int MaxLoras = 8;
    private const int Rank = 8;
    private const double TargetSeconds = 60;
    private const double TargetCallsPerSecond = 20;
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(3);

    private static readonly HashSet<string> Valued = ["--adapters", "--engines", "--per-resource", "--max-cpu-loras", "--load-delay", "--timeout", "--tail", "--seed", "--results"];
    private static readonly HashSet<string> Switches = ["--adapter-services"];

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs("churn", args, Valued, Switches);
        var adapterCount = a.Int("--adapters", 10_000, 1, 100_000);
        var engines = a.Int("--engines", 64, 1, 1000);
        var perResource = a.Int("--per-resource", 100, 1, 10_000);
        var maxCpuLoras = a.Int("--max-cpu-loras", 256, 1, 100_000);
        var perEngine = Math.Max(MaxLoras, maxCpuLoras);
        if ((long)engines * perEngine < adapterCount)
            throw new BenchUsageException($"--max-cpu-loras: {engines} engines x max({MaxLoras}, {maxCpuLoras}) = {engines * perEngine} slots cannot hold --adapters {adapterCount} (one replica each); raise --max-cpu-loras or --engines");
        var loadDelay = a.Seconds("--load-delay", 0.5, 0, 60);
        var timeout = a.Seconds("--timeout", 300, 1);
        var tail = a.Seconds("--tail", 30, 0, 3600);
        var adapterServices = a.Has("--adapter-services");
        var seed = a.Int("--seed", 1, 0);
        var resultsDir = a.String("--results", RepoPaths.DefaultResults);

        var work = Path.Combine(Path.GetTempPath(), "hybridserving-bench", "churn-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        var repository = Directory.CreateDirectory(Path.Combine(work, "adapters")).FullName;
        try
        {
            var width = Math.Max(5, (adapterCount - 1).ToString(CultureInfo.InvariantCulture).Length);
            var names = Enumerable.Range(0, adapterCount).Select(i => "churn-" + i.ToString("D" + width, CultureInfo.InvariantCulture)).ToList();
            var shape = BaseModelShape.For(BaseModel);
            Progress.Log($"writing {adapterCount:N0} PEFT adapters (rank {Rank}, {BaseModel} shapes) to {repository}");
            for (var i = 0; i < names.Count; i++)
                PeftAdapterWriter.Write(Path.Combine(repository, names[i]), shape, Rank, ["q_proj", "v_proj"], unchecked(seed * 7919 + i));
            var adapterBytes = Directory.GetFiles(Path.Combine(repository, names[0])).Sum(f => new FileInfo(f).Length);
            var resources = names.Chunk(perResource).Select((chunk, i) => Resource($"churn-{i:D3}", repository, chunk)).ToList();

            Progress.Log($"starting the Kubernetes API test server, {engines} engine pods with simulated sidecars, and the ControlPlane (Kubernetes home)");
            var engineShape = new SimulatedEngineShape(BaseModel, MaxLoras, maxCpuLoras, MaxLoraRank: 16, EnginesPerNode: 8);
            // BenchArgs.Given holds valued flags only: add the switch so the recorded command repeats the run.
            var parameters = new Dictionary<string, string>(a.Given);
            if (adapterServices) parameters["--adapter-services"] = "";
            var report = new BenchReport("churn", parameters);
            await using (var cluster = await ChurnCluster.StartAsync(engines, engineShape, loadDelay, seed, adapterServices, TimeSpan.FromSeconds(60)))
            {
                var run = await ChurnAsync(cluster, resources, adapterCount, timeout, tail);
                Describe(report, cluster, run, adapterCount, engines, perResource, resources.Count, perEngine, loadDelay, adapterBytes);
            }
            report.Write(resultsDir);
            return 0;
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); }
            catch (IOException) { }
        }
    }

    /// <summary>A LoraAdapter naming its adapters explicitly, in a local repository the ControlPlane reads (config + safetensors header + digest).</summary>
    private static LoraAdapter Resource(string name, string repository, IReadOnlyList<string> adapters) => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = Namespace },
        Spec = new LoraAdapterSpec
        {
            BaseModel = BaseModel,
            AdapterSource = new AdapterSource { Type = AdapterSourceTypes.Local, Repository = repository, Adapters = [.. adapters] },
            DeploymentConfig = new DeploymentConfig { Replicas = new ReplicaConfig { Min = 1, Max = 1 } },
        },
    };

    /// <summary>What one churn produced: the moments, the ControlPlane's calls, and its own counters.</summary>
    private sealed record ChurnRun(
        DateTimeOffset Declared, DateTimeOffset Created, DateTimeOffset? AllLoadedOnSidecars, DateTimeOffset? Ready, DateTimeOffset End, DateTimeOffset? ServicesComplete,
        bool StillWriting, int ReadyObjects, int LoadedInStatus, MutationLedger Ledger, IReadOnlyList<EnsureRecord> Ensures,
        long ReconcilePasses, long StatusWrites, long StatusSkips, long Conflicts, long EventsSent, long EventsDropped, TimeSpan Cpu);

    private static async Task<ChurnRun> ChurnAsync(ChurnCluster cluster, IReadOnlyList<LoraAdapter> resources, int adapterCount, TimeSpan timeout, TimeSpan tail)
    {
        var server = cluster.Server;
        var home = cluster.Home;
        var passes0 = cluster.Reconciler.Model.Sequence;
        var (writes0, skips0, conflicts0, sent0, dropped0) = (home.StatusWrites, home.StatusSkips, home.Conflicts, home.Events.Sent, home.Events.Dropped);
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var loaded = cluster.Fleet.WhenLoaded(adapterCount);

        // Declare: the objects are POSTed one after another, as `kubectl apply -f dir/` does.
        Progress.Log($"declaring {resources.Count} LoraAdapters ({adapterCount:N0} adapters)");
        var declared = DateTimeOffset.UtcNow;
        using (var client = server.CreateClient())
            foreach (var r in resources)
                await client.CustomObjects.CreateNamespacedCustomObjectAsync(r, LoraAdapter.Group, LoraAdapter.Version, Namespace, LoraAdapter.Plural);
        var created = DateTimeOffset.UtcNow;

        // Ready: every object's phase is Ready in the API server and its statuses list all adapters LOADED.
        DateTimeOffset? observedReady = null;
        var (readyObjects, loadedInStatus) = (0, 0);
        var nextProgress = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(5);
        while (true)
        {
            var objects = server.List<LoraAdapter>(Namespace);
            readyObjects = objects.Count(o => o.Status?.Phase == LoraAdapterPhases.Ready);
            loadedInStatus = objects.Sum(o => o.Status?.LoadedAdapters?.Count ?? 0);
            var now = DateTimeOffset.UtcNow;
            if (readyObjects == resources.Count && loadedInStatus == adapterCount && cluster.Fleet.Loaded >= adapterCount)
            {
                observedReady = now;
                break;
            }
            if (now - declared > timeout) break;
            if (now >= nextProgress)
            {
                Progress.Log($"  {(now - declared).TotalSeconds:0}s: {readyObjects}/{resources.Count} LoraAdapters Ready, {loadedInStatus:N0} adapters LOADED in status, {cluster.Fleet.Loaded:N0} on sidecars, {ControlPlaneCalls(server, declared).Count} mutating calls");
                nextProgress = now + TimeSpan.FromSeconds(5);
            }
            await Task.Delay(250);
        }

        // The moment of Ready is the status write that completed it (the poll above only notices it).
        DateTimeOffset? ready = observedReady is { } seen
            ? ControlPlaneCalls(server, declared).Where(c => c.Resource == "loraadapters" && c.Subresource == "status" && c.StatusCode < 300 && c.Time <= seen)
                .Select(c => (DateTimeOffset?)c.Time).Max() ?? seen
            : null;
        Progress.Log(ready is { } r0
            ? $"all {resources.Count} LoraAdapters Ready after {(r0 - declared).TotalSeconds:0.0} s; counting until the ControlPlane is quiet"
            : $"not Ready within {timeout.TotalSeconds:0} s: {readyObjects}/{resources.Count} Ready, {loadedInStatus:N0}/{adapterCount:N0} LOADED in status");

        // The tail: events and other writes the churn caused after Ready still count.
        // With adapter Services the churn is over only when every adapter has its Service and EndpointSlice: a
        // pause in the writes (the sync re-listing after it yielded to statuses) is not the end.
        var tailEnd = DateTimeOffset.UtcNow + (ready is null ? TimeSpan.Zero : tail);
        DateTimeOffset? servicesComplete = null;
        while (DateTimeOffset.UtcNow < tailEnd)
        {
            var last = LastWorkCall(server, declared) ?? declared;
            if (cluster.HomeOptions.AdapterServices)
            {
                var (services, slices) = (server.List<V1Service>(Namespace).Count, server.List<V1EndpointSlice>(Namespace).Count);
                if (services >= adapterCount && slices >= adapterCount) servicesComplete ??= last;
                else if (DateTimeOffset.UtcNow >= nextProgress)
                {
                    Progress.Log($"  {(DateTimeOffset.UtcNow - declared).TotalSeconds:0}s: {services:N0} adapter Services, {slices:N0} EndpointSlices of {adapterCount:N0}");
                    nextProgress = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(30);
                }
                if (servicesComplete is null) { await Task.Delay(250); continue; }
            }
            if (DateTimeOffset.UtcNow - last >= Quiet) break;
            await Task.Delay(250);
        }
        var lastWork = LastWorkCall(server, declared) ?? declared;
        var stillWriting = DateTimeOffset.UtcNow - lastWork < Quiet;
        if (stillWriting) Progress.Log($"the ControlPlane was still writing when {(ready is null ? "--timeout" : "--tail")} ran out: the whole-churn figures stop there");
        var end = ready is null ? DateTimeOffset.UtcNow : new[] { ready.Value, lastWork }.Max();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
        var allLoaded = loaded.IsCompletedSuccessfully ? loaded.Result : (DateTimeOffset?)null;
        var ledger = new MutationLedger([.. ControlPlaneCalls(server, declared).Where(c => c.Time <= end)], declared);
        return new ChurnRun(declared, created, allLoaded, ready, end, servicesComplete, stillWriting, readyObjects, loadedInStatus, ledger,
            [.. cluster.Fleet.EnsureCalls.Where(e => e.At >= declared && e.At <= end)],
            cluster.Reconciler.Model.Sequence - passes0, home.StatusWrites - writes0, home.StatusSkips - skips0, home.Conflicts - conflicts0,
            home.Events.Sent - sent0, home.Events.Dropped - dropped0, cpu);
    }

    /// <summary>Mutating calls since <paramref name="since"/> that the ControlPlane made: all of them but the harness's own LoraAdapter creates.</summary>
    private static List<RequestRecord> ControlPlaneCalls(KubeApiTestServer.KubeApiServer server, DateTimeOffset since) =>
        [.. server.Requests.Where(c => c.IsMutating && c.Time >= since && !(c.Resource == "loraadapters" && c.Verb == "create"))];

    /// <summary>The last call that was churn work, not the Lease renewals a leader makes anyway.</summary>
    private static DateTimeOffset? LastWorkCall(KubeApiTestServer.KubeApiServer server, DateTimeOffset since) =>
        ControlPlaneCalls(server, since).Where(c => c.Resource != "leases").Select(c => (DateTimeOffset?)c.Time).Max();

    private static void Describe(BenchReport report, ChurnCluster cluster, ChurnRun run, int adapterCount, int engines, int perResource, int objects,
        int perEngine, TimeSpan loadDelay, long adapterBytes)
    {
        string S(DateTimeOffset? t) => t is { } v ? (v - run.Declared).TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) : "—";
        string N(double v) => v.ToString("N0", CultureInfo.InvariantCulture);
        string F(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);
        var calls = run.Ledger.Calls;
        var readyOrEnd = run.Ready ?? run.End;
        var untilReady = run.Ledger.Until(readyOrEnd).ToList();
        var whole = (run.End - run.Declared).TotalSeconds;
        var avgWhole = run.Ledger.AveragePerSecond(run.End);
        var avgReady = run.Ledger.AveragePerSecond(readyOrEnd);
        var perSecond = run.Ledger.PerSecond(run.End);
        var peak = perSecond.Max();
        var peakAt = Array.IndexOf(perSecond, peak);
        DateTimeOffset? Last(string purpose) => calls.Where(c => MutationLedger.Purpose(c) == purpose).Select(c => (DateTimeOffset?)c.Time).Max();
        DateTimeOffset? First(string purpose) => calls.Where(c => MutationLedger.Purpose(c) == purpose).Select(c => (DateTimeOffset?)c.Time).Min();
        var firstEnsure = run.Ensures.Where(e => e.Adapters > 0).Select(e => (DateTimeOffset?)e.At).Min();

        var milestones = report.Table("Where the time goes (seconds after the first LoraAdapter was POSTed)", "milestone", "t (s)");
        milestones.Add($"all {objects} LoraAdapters created (the harness's POSTs)", S(run.Created));
        milestones.Add("first EnsureAdapters with adapters reaches a sidecar", S(firstEnsure));
        milestones.Add($"all {N(adapterCount)} adapters LOADED on the sidecars", S(run.AllLoadedOnSidecars));
        milestones.Add("finalizers: first / last added", $"{S(First("finalizer"))} / {S(Last("finalizer"))}");
        milestones.Add("status: first / last write", $"{S(First("status"))} / {S(Last("status"))}");
        milestones.Add($"**all {objects} LoraAdapters Ready, {N(adapterCount)} adapters LOADED in status**", S(run.Ready));
        if (cluster.HomeOptions.AdapterServices)
            milestones.Add($"every adapter's Service and EndpointSlice written ({adapterCount:N0} each)", run.ServicesComplete is { } sc ? S(sc) : "not within --tail");
        milestones.Add("last ControlPlane write other than its Lease (end of the churn)", S(run.End) + (run.StillWriting ? " (still writing: cut off by --tail/--timeout)" : ""));

        string UntilReady(Func<string> figure) => run.Ready is null ? "—" : figure();
        var byPurpose = report.Table($"Mutating Kubernetes API calls by the ControlPlane (declared -> Ready: {(run.Ready is null ? "not Ready" : F((readyOrEnd - run.Declared).TotalSeconds) + " s")}; whole churn: {F(whole)} s)",
            "what", "request", "until Ready", "whole churn", "share", "failed (4xx/5xx)");
        foreach (var g in calls.GroupBy(c => (Purpose: MutationLedger.Purpose(c), Request: MutationLedger.Request(c))).OrderByDescending(g => g.Count()))
            byPurpose.Add(g.Key.Purpose, $"`{g.Key.Request}`", UntilReady(() => N(g.Count(c => c.Time <= readyOrEnd))), N(g.Count()),
                calls.Count > 0 ? $"{100.0 * g.Count() / calls.Count:0}%" : "—", N(g.Count(c => c.StatusCode >= 400)));
        byPurpose.Add("**total**", "", UntilReady(() => N(untilReady.Count)), N(calls.Count), "100%", N(calls.Count(c => c.StatusCode >= 400)));
        byPurpose.Add("**per second on average**", "", UntilReady(() => F(avgReady)), F(avgWhole), "", "");
        byPurpose.Add("**peak in one second**", "", "", $"{peak} (second {peakAt})", "", "");

        var purposes = calls.GroupBy(MutationLedger.Purpose).OrderByDescending(g => g.Count()).Select(g => g.Key).ToList();
        // Slices of 5 s, wider on long runs so that the table stays about a dozen rows.
        var width = Math.Max(5, (int)Math.Ceiling(perSecond.Length / 12.0 / 5) * 5);
        var timeline = report.Table($"Mutating calls per {width}-second slice (the mutation budget's pacing)", ["t (s)", .. purposes, "calls/s"]);
        for (var from = 0; from < perSecond.Length; from += width)
        {
            var slice = calls.Where(c => (int)(c.Time - run.Declared).TotalSeconds is var s && s >= from && s < from + width).ToList();
            var seconds = Math.Min(width, perSecond.Length - from);
            timeline.Add([$"{from}-{from + seconds}", .. purposes.Select(p => N(slice.Count(c => MutationLedger.Purpose(c) == p))), F(slice.Count / (double)seconds)]);
        }

        var statusCalls = calls.Count(c => MutationLedger.Purpose(c) == "status");
        var ensures = run.Ensures.Count;
        var baseline = report.Table("Batching against the per-adapter baseline (same adapters, same run)", "calls", "HybridServing", "per adapter (baseline)", "baseline ÷ HybridServing");
        baseline.Add("LoraAdapter status writes", N(statusCalls), N(adapterCount), statusCalls > 0 ? $"{adapterCount / (double)statusCalls:0.#}x" : "—");
        baseline.Add("all mutating Kubernetes API calls", N(calls.Count), $"{N(adapterCount)} (status writes alone)", calls.Count > 0 ? $"{adapterCount / (double)calls.Count:0.#}x" : "—");
        baseline.Add("sidecar calls (EnsureAdapters)", N(ensures), $"{N(adapterCount)} (one load each)", ensures > 0 ? $"{adapterCount / (double)ensures:0.#}x" : "—");
        var largest = cluster.Fleet.Sidecars.Max(s => s.LargestDesiredSet);
        var used = cluster.Fleet.Sidecars.Count(s => s.Held > 0);

        report.Targets.Add(new TargetCheck($"declared -> all {N(adapterCount)} adapters LOADED and every LoraAdapter Ready ({engines} engines)",
            run.Ready is { } r ? $"{F((r - run.Declared).TotalSeconds)} s" : $"not Ready ({run.ReadyObjects}/{objects} Ready, {N(run.LoadedInStatus)} LOADED in status after {F(whole)} s)",
            $"<= {TargetSeconds:0} s", run.Ready is { } r2 && (r2 - run.Declared).TotalSeconds <= TargetSeconds));
        report.Targets.Add(new TargetCheck("mutating Kubernetes API calls per second, average over the whole churn (declared -> last write)",
            $"{F(avgWhole)}/s ({N(calls.Count)} calls in {F(whole)} s{(run.StillWriting ? ", still writing when cut off" : "")}{(run.Ready is null ? "" : $"; {F(avgReady)}/s until Ready")}; peak {peak} in one second)",
            $"<= {TargetCallsPerSecond:0}/s", avgWhole <= TargetCallsPerSecond && (run.Ready is null || avgReady <= TargetCallsPerSecond)));

        var options = cluster.HomeOptions;
        report.Notes.Add($"In one process on {Environment.ProcessorCount} shared cores, over real HTTP/gRPC on 127.0.0.1: the stateful Kubernetes API test server (tests/KubeApiTestServer), {engines} engine pods in it (8 per node), the ControlPlane from its own composition root with ControlPlane:Home=Kubernetes and the Kubernetes home's defaults (leader election, MutationsPerSecond {options.MutationsPerSecond:0.#}, MutationBurst {options.MutationBurst}, AdapterServices {(options.AdapterServices ? "on" : "off")}).");
        report.Notes.Add($"The boundary: each engine pod's sidecar is simulated (bench/Churn/SidecarFleet.cs, the sidecar.proto contract) with no engine and no GPU behind it: EnsureAdapters is acknowledged at once (new adapters LOADING) and the adapters are reported LOADED on WatchState after {loadDelay.TotalSeconds:0.###} s x U(0.5, 1.5). GetInfo/WatchState report max_loras {MaxLoras}, max_cpu_loras {cluster.Fleet.Sidecars[0].Info.MaxCpuLoras} (capacity {perEngine} adapters per engine), max_lora_rank 16.");
        report.Notes.Add($"Adapters: {N(adapterCount)} real PEFT directories (rank {Rank}, q_proj/v_proj, {BaseModel} shapes, {N(adapterBytes)} bytes each) in a local folder, declared as {objects} LoraAdapter objects of up to {perResource} explicit names (`adapterSource: {{type: local, adapters: [...]}}`), replicas 1; the ControlPlane reads each adapter's config, safetensors header and digest.");
        report.Notes.Add($"Counted: every mutating request (create/update/patch/delete) the API server answered during the churn except the harness's {objects} LoraAdapter creates, failures included, timed by the server. Ready is the status write that completed the last object.");
        report.Notes.Add($"ControlPlane counters over the churn: {N(run.ReconcilePasses)} reconcile passes; {N(run.StatusWrites)} status writes, {N(run.StatusSkips)} skipped as unchanged, {N(run.Conflicts)} conflicts; {N(run.EventsSent)} events sent, {N(run.EventsDropped)} dropped. Sidecars: {N(ensures)} EnsureAdapters calls carrying {N(run.Ensures.Sum(e => e.Adapters))} adapter entries; {used} engines hold adapters, the largest desired set was {largest} (capacity {perEngine}).");
        report.Notes.Add($"Harness process CPU over the churn (API server, ControlPlane and sidecars together): {run.Cpu.TotalSeconds:0.0} s in {F(whole)} s = {run.Cpu.TotalSeconds / Math.Max(whole, 1e-9):0.00} cores.");

        report.Data["declaredToReadySeconds"] = EngineRateCommand.J(run.Ready is { } rr ? (rr - run.Declared).TotalSeconds : double.NaN);
        report.Data["allLoadedOnSidecarsSeconds"] = EngineRateCommand.J(run.AllLoadedOnSidecars is { } l ? (l - run.Declared).TotalSeconds : double.NaN);
        report.Data["churnSeconds"] = whole;
        report.Data["stillWritingWhenCutOff"] = run.StillWriting;
        report.Data["mutatingCalls"] = calls.Count;
        report.Data["mutatingCallsUntilReady"] = untilReady.Count;
        report.Data["callsPerSecondAverage"] = avgWhole;
        report.Data["callsPerSecondAverageUntilReady"] = avgReady;
        report.Data["callsPerSecondPeak"] = peak;
        report.Data["callsPerSecond"] = new JsonArray([.. perSecond.Select(n => (JsonNode?)n)]);
        report.Data["callsByRequest"] = new JsonObject(calls.GroupBy(MutationLedger.Request).Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count())));
        report.Data["ensureAdaptersCalls"] = ensures;
        report.Data["naiveStatusWrites"] = adapterCount;
        report.Data["reconcilePasses"] = run.ReconcilePasses;
        report.Data["eventsDropped"] = run.EventsDropped;
        report.Data["cpuSeconds"] = run.Cpu.TotalSeconds;
    }
}
