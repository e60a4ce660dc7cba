using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Policies;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.MockEngine.Performance;

namespace HybridServing.ClusterSimulator.Cluster;

/// <summary>
/// The engines on one virtual clock plus what a sidecar and a gateway do around them: download an
/// adapter's artifacts to the node (object-store tier), register it with the engine (vLLM's load
/// API: the model charges the disk → host read), hold requests until their adapter is registered,
/// count in-flight requests, and retry requests lost with an engine. Policies decide; this acts.
/// </summary>
internal sealed class SimulatedCluster
{
    public static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly List<SimEngine> _engines = [];
    private readonly PriorityQueue<(SimEngine Engine, int Adapter), (long Ticks, long Seq)> _fetches = new();
    private readonly Dictionary<ModelRequest, SimRequest> _running = new(ReferenceEqualityComparer.Instance);
    private readonly ServingPolicy _policy;
    private long _fetchSeq;

    public SimulatedCluster(SimulationOptions options, AdapterCatalog catalog, ServingPolicy policy, double startSeconds)
    {
        Options = options;
        Catalog = catalog;
        _policy = policy;
        Fleet = new VirtualEngineFleet(At(startSeconds));
        Now = startSeconds;
        var engineOptions = policy.EngineOptions(options);
        for (var i = 0; i < options.Engines; i++)
        {
            var driver = Fleet.Add(engineOptions with { Seed = Seeds.Derive(options.Seed, 100 + i) }, policy.Profile);
            _engines.Add(new SimEngine(i, driver, AdapterCatalog.BaseModel));
        }
        Alive = _engines;
        Clock = new VirtualClock(() => Now);
    }

    public SimulationOptions Options { get; }
    public AdapterCatalog Catalog { get; }
    public VirtualEngineFleet Fleet { get; }
    /// <summary>Virtual seconds since the start of the trace.</summary>
    public double Now { get; private set; }
    /// <summary><see cref="Now"/> for product code that reads a <see cref="TimeProvider"/>.</summary>
    public TimeProvider Clock { get; }
    public IReadOnlyList<SimEngine> AllEngines => _engines;
    public IReadOnlyList<SimEngine> Alive { get; private set; }
    public HashSet<SimRequest> Outstanding { get; } = [];
    /// <summary>Object-store downloads, with the virtual second each started.</summary>
    public List<double> RemoteFetches { get; } = [];

    public event Action<SimRequest>? RequestFinished;
    public event Action<SimEngine, int>? AdapterRegistered;

    public static DateTimeOffset At(double seconds) => Epoch + TimeSpan.FromTicks((long)Math.Round(seconds * TimeSpan.TicksPerSecond));

    public double? NextFetchCompletion => _fetches.TryPeek(out _, out var p) ? (p.Ticks - Epoch.UtcTicks) / (double)TimeSpan.TicksPerSecond : null;

    public void AdvanceTo(double seconds)
    {
        Fleet.AdvanceTo(At(seconds));
        Now = seconds;
    }

    /// <summary>
    /// Makes the adapter registered on the engine: at once if its artifacts are on the node, else
    /// after an object-store download. Returns whether it is registered now.
    /// </summary>
    public bool EnsureRegistered(SimEngine engine, int adapter)
    {
        if (engine.Registered.Contains(adapter)) return true;
        // A download or a delayed registration (RegisterAfter) is under way: it registers when done.
        if (engine.Fetching.ContainsKey(adapter)) return false;
        if (engine.Disk.Contains(adapter))
        {
            engine.Registered.Add(adapter);
            engine.Driver.RegisterAdapter(Catalog.Adapters[adapter].Spec);
            AdapterRegistered?.Invoke(engine, adapter);
            return true;
        }
        if (!engine.Fetching.ContainsKey(adapter))
        {
            var seconds = engine.Model.Profile.RemoteToHost.SecondsFor(Catalog.Adapters[adapter].SizeBytes);
            var done = At(Now + seconds);
            engine.Fetching[adapter] = done;
            _fetches.Enqueue((engine, adapter), (done.UtcTicks, _fetchSeq++));
            RemoteFetches.Add(Now);
        }
        return false;
    }

    /// <summary>
    /// Registers an adapter whose artifacts are on the node <paramref name="seconds"/> from now: the time a
    /// load takes through the control path (request, plan, sidecar, routing table) before the engine has it.
    /// Requests sent there meanwhile are held, as for a download.
    /// </summary>
    public void RegisterAfter(SimEngine engine, int adapter, double seconds)
    {
        if (seconds <= 0 || engine.Registered.Contains(adapter) || engine.Fetching.ContainsKey(adapter)) return;
        var done = At(Now + seconds);
        engine.Fetching[adapter] = done;
        _fetches.Enqueue((engine, adapter), (done.UtcTicks, _fetchSeq++));
    }

    /// <summary>Puts artifacts on a node without cost (pre-staged before the run starts).</summary>
    public void Stage(SimEngine engine, int adapter) => engine.Disk.Add(adapter);

    /// <summary>Unloads the adapter from the engine; requests waiting for it there are routed again.</summary>
    public void Unregister(SimEngine engine, int adapter)
    {
        engine.Fetching.Remove(adapter);
        if (engine.Registered.Remove(adapter)) engine.Driver.UnregisterAdapter(Catalog.Adapters[adapter].Name);
        if (engine.Held.Remove(adapter, out var held))
            foreach (var r in held)
            {
                engine.InFlight--;
                Dispatch(r);
            }
    }

    public void CompleteDueFetches()
    {
        var now = At(Now);
        while (_fetches.TryPeek(out var item, out var p) && p.Ticks <= now.UtcTicks)
        {
            _fetches.Dequeue();
            var (engine, adapter) = item;
            if (!engine.Alive) continue;
            engine.Disk.Add(adapter);
            // Unassigned while downloading: the artifacts stay on disk, nothing is registered.
            if (!engine.Fetching.Remove(adapter)) continue;
            EnsureRegistered(engine, adapter);
            if (engine.Held.Remove(adapter, out var held))
                foreach (var r in held) Submit(engine, r);
        }
    }

    /// <summary>Routes a request with the policy and sends it (a first attempt or a retry).</summary>
    public void Dispatch(SimRequest request)
    {
        var engine = _policy.Route(request, this);
        SendTo(engine, request);
    }

    public void Admit(SimRequest request)
    {
        Outstanding.Add(request);
        Dispatch(request);
    }

    private void SendTo(SimEngine engine, SimRequest request)
    {
        request.Attempts++;
        request.Engine = engine;
        engine.InFlight++;
        if (EnsureRegistered(engine, request.Adapter))
        {
            Submit(engine, request);
            return;
        }
        if (!engine.Held.TryGetValue(request.Adapter, out var list)) engine.Held[request.Adapter] = list = [];
        list.Add(request);
    }

    private void Submit(SimEngine engine, SimRequest request)
    {
        var model = new ModelRequest(request.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
            Catalog.Adapters[request.Adapter].Name, request.PromptTokens, request.OutputTokens);
        model.Finished = OnFinished;
        request.Current = model;
        request.Submitted = Now;
        _running[model] = request;
        engine.Driver.Submit(model);
    }

    private void OnFinished(ModelRequest model)
    {
        if (!_running.Remove(model, out var request)) return;
        var end = (model.FinishTime!.Value - Epoch).TotalSeconds;
        var first = (model.FirstTokenTime!.Value - Epoch).TotalSeconds;
        request.Ttft = first - request.Arrival;
        request.Tpot = model.TimePerOutputToken?.TotalSeconds;
        request.Done = true;
        request.Service = end - request.Submitted;
        request.Engine!.InFlight--;
        Outstanding.Remove(request);
        RequestFinished?.Invoke(request);
    }

    /// <summary>
    /// Puts the engine to sleep or wakes it: a sleeping engine is not routed to (it stays in the fleet, so
    /// requests it already admitted finish).
    /// </summary>
    public void SetAwake(SimEngine engine, bool awake)
    {
        engine.Awake = awake;
        Alive = [.. _engines.Where(e => e.Alive && e.Awake)];
    }

    /// <summary>The engine is gone (node lost): its requests are retried elsewhere by the gateway.</summary>
    public void LoseEngine(SimEngine engine)
    {
        engine.Alive = false;
        Alive = [.. _engines.Where(e => e.Alive && e.Awake)];
        var lost = Fleet.Remove(engine.Driver);
        var retry = new List<SimRequest>();
        foreach (var m in lost)
            if (_running.Remove(m, out var r)) retry.Add(r);
        foreach (var held in engine.Held.Values) retry.AddRange(held);
        engine.Held.Clear();
        engine.Fetching.Clear();
        engine.InFlight = 0;
        _policy.OnEngineLost(engine, this);
        foreach (var r in retry.OrderBy(r => r.Id))
        {
            r.RetriedAt = Now;
            Dispatch(r);
        }
    }
}
