using HybridServing.Contracts.Telemetry;
using System.Diagnostics;
using System.Threading.Channels;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Contracts.Resources;
using HybridServing.Contracts.Sidecar;
using HybridServing.ControlPlane.Engines;
using HybridServing.ControlPlane.Homes;
using HybridServing.ControlPlane.Placement;
using HybridServing.ControlPlane.Resources;
using HybridServing.ControlPlane.Routing;
using HybridServing.ControlPlane.Sources;
using HybridServing.ControlPlane.Telemetry;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Reconciliation;

/// <summary>
/// The level-based control loop: decide (validate, discover, resolve names, solve placement),
/// apply (one EnsureAdapters per engine with its complete desired set, only when it changed),
/// record (status to the home, the routing table to gateways). It runs on every change of the
/// declarations or of an engine's reported state, when a backoff expires, and periodically.
/// </summary>
internal sealed partial class Reconciler : BackgroundService
{
    private readonly ISecretReader _secrets;
    private readonly IControlPlaneHome _home;
    private readonly EngineRegistry _engines;
    private readonly IAdapterDiscovery _discovery;
    private readonly RoutingTableStore _routes;
    private readonly TimeProvider _time;
    private readonly ControlPlaneOptions _options;
    private readonly ILogger<Reconciler> _logger;
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly AdapterBackoff _backoff;
    private readonly Dictionary<string, DiscoveryEntry> _discoveries = new(StringComparer.Ordinal);
    // On-demand adapters a gateway asked for, with when it last asked (least recently requested is evicted first).
    private readonly Dictionary<string, DateTimeOffset> _requested = new(StringComparer.Ordinal);
    // Loads a gateway waits for, (adapter, engine or null = anywhere) → until when; guarded by _requestGate.
    private readonly Dictionary<(string Adapter, string? Engine), DateTimeOffset> _awaited = [];
    // 1 when the next pass should skip the coalescing delay (see WakeNow).
    private int _urgent;
    // Overflow loads gateways asked for, by (adapter, engine); applied over each solved plan until they expire.
    private readonly Dictionary<(string Adapter, string Engine), OverflowGrant> _grants = [];
    private readonly Lock _requestGate = new();
    private readonly TraceHandoff _traces = new();
    private readonly Dictionary<string, LoraAdapterStatus> _previous = new(StringComparer.Ordinal);
    private volatile ReconcileModel _model = ReconcileModel.Empty;
    private TaskCompletionSource<ReconcileModel> _reconciled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Plan? _lastPlan;
    private long _sequence;
    private readonly IControlPlaneLeadership _leadership;
    private readonly DemandTracker _demand;
    private readonly LoraAdapterPhaseGauge _phases;
    private readonly PlacementOptions _placement;
    private DateTimeOffset? _startedAt;
    // Adapters evicted for a higher-priority one stay "Preempted" (not merely short of capacity) until placed again.
    private readonly Dictionary<string, Preemption> _preempted = new(StringComparer.Ordinal);
    // Engines drained for scale-down (engine name → since): placement leaves them out until undrained.
    private readonly Dictionary<string, DateTimeOffset> _drained = new(StringComparer.Ordinal);

    private sealed record DiscoveryEntry(string Fingerprint, DiscoveryResult Result, DateTimeOffset ValidUntil, int Failures);

    public Reconciler(IControlPlaneHome home, IControlPlaneLeadership leadership, EngineRegistry engines, IAdapterDiscovery discovery,
        RoutingTableStore routes, DemandTracker demand, LoraAdapterPhaseGauge phases, TimeProvider time, IOptions<ControlPlaneOptions> options, ILogger<Reconciler> logger,
        ISecretReader secrets)
    {
        _secrets = secrets;
        _phases = phases;
        _demand = demand;
        _home = home;
        _leadership = leadership;
        _engines = engines;
        _discovery = discovery;
        _routes = routes;
        _time = time;
        _options = options.Value;
        _logger = logger;
        _backoff = new AdapterBackoff(_options.BackoffInitial, _options.BackoffMax);
        _placement = new PlacementOptions(_options.SpreadAcrossNodes, _options.RatePerReplica);
    }

    /// <summary>The last reconcile's picture.</summary>
    public ReconcileModel Model => _model;

    public void Wake() => _wake.Writer.TryWrite(true);

    /// <summary>
    /// A wake a gateway's request is waiting on (a cold start, an overflow load, or the load one of them
    /// asked for completing): the next pass starts without the coalescing delay.
    /// </summary>
    private void WakeNow()
    {
        Volatile.Write(ref _urgent, 1);
        Wake();
    }

    /// <summary>
    /// Notes that a gateway waits for <paramref name="adapter"/> to be LOADED (on <paramref name="engine"/>,
    /// or anywhere when null), so that the sidecar's report of it wakes the reconciler at once.
    /// </summary>
    private void Await(string adapter, string? engine)
    {
        var now = _time.GetUtcNow();
        lock (_requestGate)
        {
            foreach (var expired in _awaited.Where(a => a.Value <= now).Select(a => a.Key).ToList()) _awaited.Remove(expired);
            _awaited[(adapter, engine)] = now + TimeSpan.FromSeconds(30);
        }
    }

    private void OnAdapterLoaded(string engine, string adapter)
    {
        bool awaited;
        lock (_requestGate) awaited = _awaited.Remove((adapter, engine)) | _awaited.Remove((adapter, null));
        if (awaited) WakeNow();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _home.Changed += Wake;
        _engines.Changed += Wake;
        _engines.AdapterLoaded += OnAdapterLoaded;
        await _home.StartAsync(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            DateTimeOffset? next = null;
            try
            {
                if (_home.Synced) next = await ReconcileOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogReconcileFailed(_logger, e);
                next = _time.GetUtcNow() + _options.BackoffInitial;
            }
            var delay = (next ?? _time.GetUtcNow() + _options.ResyncInterval) - _time.GetUtcNow();
            if (delay < TimeSpan.Zero) delay = TimeSpan.Zero;
            using var timer = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            try
            {
                var woken = _wake.Reader.ReadAsync(timer.Token).AsTask();
                var elapsed = Task.Delay(delay, _time, timer.Token);
                await Task.WhenAny(woken, elapsed);
                await timer.CancelAsync();
                // Coalesce a burst of state updates into one pass, unless a gateway's request waits on it.
                if (Interlocked.Exchange(ref _urgent, 0) == 0)
                    await Task.Delay(TimeSpan.FromMilliseconds(20), _time, stoppingToken);
                while (_wake.Reader.TryRead(out _)) { }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>
    /// A gateway's cold start: mark a declared adapter as wanted even if it loads on demand, let the
    /// next reconcile place it, and answer with the outcome.
    /// </summary>
    public async Task<RequestLoadResponse> RequestLoadAsync(string name, CancellationToken cancellationToken)
    {
        var model = _model;
        if (!model.Owners.TryGetValue(name, out var owner)) return Undeclared(model, name);
        // Only the leader drives sidecars: a follower could place the adapter but never load it.
        if (!_leadership.IsLeader && model.Plan.EnginesFor(name).Count == 0)
            return Refuse("NotLeader", $"this control plane replica does not lead (leader: {_leadership.Leader ?? "unknown"}); retry, or reach the leader.");
        if (model.Plan.EnginesFor(name).Count > 0)
        {
            lock (_requestGate)
                if (_requested.ContainsKey(name)) _requested[name] = _time.GetUtcNow();
            return new RequestLoadResponse { Accepted = true, Reason = "AlreadyPlaced", Message = $"'{name}' is placed on {string.Join(", ", model.Plan.EnginesFor(name))}." };
        }

        Task<ReconcileModel> done;
        lock (_requestGate)
        {
            _requested[name] = _time.GetUtcNow();
            done = _reconciled.Task;
        }
        Await(name, null);
        _traces.Add();
        WakeNow();
        // Wait for a reconcile that started after the request.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        try
        {
            var after = await done.WaitAsync(timeout.Token);
            if (after.Sequence <= model.Sequence || !after.Demands.ContainsKey(name))
                after = await WaitNextAsync(timeout.Token);
            var engines = after.Plan.EnginesFor(name);
            if (engines.Count == 0 && !owner.Resource.LoadOnStartup && EvictionFor(name, after) is { Count: > 0 } evict)
            {
                // Make room by dropping the least recently requested on-demand adapters (the fewest that suffice).
                Task<ReconcileModel> next;
                lock (_requestGate)
                {
                    foreach (var victim in evict) _requested.Remove(victim);
                    next = _reconciled.Task;
                }
                LogEvicted(_logger, string.Join(", ", evict), name);
                WakeNow();
                after = await next.WaitAsync(timeout.Token);
                engines = after.Plan.EnginesFor(name);
            }
            if (engines.Count > 0)
                return new RequestLoadResponse { Accepted = true, Reason = "Placed", Message = $"'{name}' is being loaded on {string.Join(", ", engines)}." };
            return after.Plan.Shortfalls.TryGetValue(name, out var s)
                ? Refuse(s.Reason, s.Message)
                : Refuse(LoraAdapterReasons.InsufficientCapacity, $"'{name}' could not be placed.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return Refuse("Timeout", $"'{name}' was not placed within 10 s; it stays requested and will be placed when possible.");
        }
    }

    private static RequestLoadResponse Undeclared(ReconcileModel model, string name)
    {
        var conflicted = model.Resources.SelectMany(r => r.Conflicts.Select(c => (r, c))).FirstOrDefault(x => x.c.Name == name);
        return conflicted.c is not null
            ? Refuse(LoraAdapterReasons.NameConflict, conflicted.c.Message)
            : Refuse("NotFound", $"no LoraAdapter declares an adapter named '{name}'.");
    }

    /// <summary>
    /// A gateway's overflow load: every engine holding <paramref name="name"/> has its GPU slots taken and
    /// <paramref name="engine"/> has free ones. Validated against the last pass, recorded as a grant for
    /// <c>ControlPlane:Overflow:GrantTtl</c> (asking again renews it), applied by the next pass through
    /// <see cref="OverflowGrants.Apply"/>; the answer says whether that pass put it in the engine's desired set.
    /// </summary>
    public async Task<RequestLoadResponse> RequestOverflowAsync(string name, string engine, CancellationToken cancellationToken)
    {
        var response = await DecideOverflowAsync(name, engine, cancellationToken);
        ControlPlaneTelemetry.OverflowRequests.Add(1, new KeyValuePair<string, object?>("reason", response.Reason));
        if (response.Accepted) LogOverflow(_logger, name, engine, response.Reason);
        else LogOverflowRefused(_logger, name, engine, response.Reason, response.Message);
        return response;
    }

    private async Task<RequestLoadResponse> DecideOverflowAsync(string name, string engine, CancellationToken cancellationToken)
    {
        var model = _model;
        if (!model.Owners.ContainsKey(name)) return Undeclared(model, name);
        // Only the leader drives sidecars: a follower's grant would never reach an engine.
        if (!_leadership.IsLeader)
            return Refuse("NotLeader", $"this control plane replica does not lead (leader: {_leadership.Leader ?? "unknown"}); retry, or reach the leader.");
        if (!_options.Overflow.Enabled)
            return Refuse(OverflowReasons.Disabled, "overflow loads are turned off (ControlPlane:Overflow:Enabled is false).");
        var grant = new OverflowGrant(name, engine, _time.GetUtcNow() + _options.Overflow.GrantTtl);
        if (model.Plan.EnginesFor(name).Contains(engine, StringComparer.Ordinal))
        {
            lock (_requestGate)
                if (_grants.ContainsKey((name, engine))) _grants[(name, engine)] = grant;
            return new RequestLoadResponse { Accepted = true, Reason = OverflowReasons.AlreadyPlaced, Message = $"'{name}' is already placed on {engine}." };
        }
        if (OverflowRefusalFor(model, name, engine) is { } refusal) return Refuse(refusal.Reason, refusal.Message);

        Task<ReconcileModel> done;
        lock (_requestGate)
        {
            _grants[(name, engine)] = grant;
            done = _reconciled.Task;
        }
        Await(name, engine);
        _traces.Add();
        WakeNow();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        try
        {
            // The pass running when the grant was recorded may have started without it; the one after it did not.
            var after = await done.WaitAsync(timeout.Token);
            if (!after.Overflows.Any(g => g.Adapter == name && g.Engine == engine && g.Expires >= grant.Expires))
            {
                lock (_requestGate) done = _reconciled.Task;
                WakeNow();
                after = await done.WaitAsync(timeout.Token);
            }
            if (after.Plan.EnginesFor(name).Contains(engine, StringComparer.Ordinal))
                return new RequestLoadResponse
                {
                    Accepted = true, Reason = OverflowReasons.Granted,
                    Message = $"'{name}' is being loaded on {engine} as an overflow replica until {grant.Expires:O}.",
                };
            // Not applied (the engine filled up in between): forget it, or it would appear later, unasked for.
            ForgetGrant(grant);
            var why = OverflowRefusalFor(after, name, engine);
            return Refuse(why?.Reason ?? "NotApplied", why?.Message ?? $"the next pass did not add '{name}' to {engine} (the grant expired before it ran, or the engine changed).");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The grant stays: a pass applies it when it runs, and it expires like any other.
            return Refuse("Timeout", $"the overflow load of '{name}' on {engine} was not decided within 10 s; it stays granted until {grant.Expires:O}.");
        }
    }

    private void ForgetGrant(OverflowGrant grant)
    {
        lock (_requestGate)
            if (_grants.TryGetValue((grant.Adapter, grant.Engine), out var current) && current == grant) _grants.Remove((grant.Adapter, grant.Engine));
    }

    /// <summary>Why the last pass's picture does not allow an overflow of <paramref name="name"/> on <paramref name="engine"/>.</summary>
    private OverflowRefusal? OverflowRefusalFor(ReconcileModel model, string name, string engine)
    {
        var view = model.Engines.FirstOrDefault(v => v.Endpoint.Name == engine);
        if (view is null)
            return new(OverflowReasons.UnknownEngine, $"no engine named '{engine}' is known (engines: {string.Join(", ", model.Engines.Select(v => v.Endpoint.Name))}).");
        var placed = model.PlacedEngines.FirstOrDefault(e => e.Name == engine);
        if (view.Sleeping || model.Drained.ContainsKey(engine))
            return new(OverflowReasons.EngineUnavailable, $"engine '{engine}' is {(view.Sleeping ? "asleep (sleep mode)" : "being drained")}: nothing new is placed on it.");
        if (!view.Connected || view.Load?.Healthy == false || placed is null)
            return new(OverflowReasons.EngineUnavailable, $"engine '{engine}' is not connected and healthy ({view.LastError ?? (view.Connected ? "unhealthy" : "not connected")}).");
        if (!model.Demands.TryGetValue(name, out var demand))
            return new(OverflowReasons.NotPlaced, $"'{name}' loads on demand and is placed nowhere: a RequestLoad without an engine (cold start) comes first.");
        return OverflowGrants.Check(model.Plan, placed, demand, model.Demands, _options.Overflow.ExtraSlotsPerEngine);
    }

    /// <summary>
    /// What-if runs of the same solver on the solved cluster: which least-recently-requested on-demand
    /// adapters, if dropped, let <paramref name="name"/> be placed? Null when none would.
    /// </summary>
    private IReadOnlyList<string>? EvictionFor(string name, ReconcileModel model)
    {
        List<string> candidates;
        lock (_requestGate)
            candidates = [.. _requested
                .Where(r => r.Key != name && model.Owners.TryGetValue(r.Key, out var o) && !o.Resource.LoadOnStartup && model.Plan.EnginesFor(r.Key).Count > 0)
                .OrderBy(r => r.Value).ThenBy(r => r.Key, StringComparer.Ordinal).Select(r => r.Key)];
        // The solved cluster as the solver left it: overflow replicas are not placement's.
        var cluster = model.Solved.Apply(new ClusterSnapshot(model.PlacedEngines));
        for (var k = 1; k <= Math.Min(candidates.Count, 16); k++)
        {
            var dropped = candidates.Take(k).ToHashSet(StringComparer.Ordinal);
            var plan = PlacementSolver.Solve(cluster, [.. model.Demands.Values.Where(d => !dropped.Contains(d.Name))], _placement);
            if (plan.EnginesFor(name).Count > 0) return [.. dropped];
        }
        return null;
    }

    /// <summary>
    /// Drains <paramref name="engine"/> before it is put to sleep or removed: placement leaves it out, so its
    /// adapters are placed on other engines; it keeps what it holds (nothing is unloaded under its in-flight
    /// requests) and stays in the routes, marked draining, for adapters no other engine has LOADED yet.
    /// Returns the pass that saw the drain; null when no such engine is declared.
    /// </summary>
    public async Task<ReconcileModel?> DrainAsync(string engine, CancellationToken ct)
    {
        if (_home.Current.Engines.All(e => e.Name != engine)) return null;
        Task<ReconcileModel> next;
        lock (_requestGate)
        {
            _drained.TryAdd(engine, _time.GetUtcNow());
            next = _reconciled.Task.WaitAsync(ct);
        }
        WakeNow();
        return await next;
    }

    /// <summary>Ends a drain (the engine was woken): placement may use it again. Null when no such engine is declared.</summary>
    public async Task<ReconcileModel?> UndrainAsync(string engine, CancellationToken ct)
    {
        if (_home.Current.Engines.All(e => e.Name != engine)) return null;
        Task<ReconcileModel> next;
        lock (_requestGate)
        {
            _drained.Remove(engine);
            next = _reconciled.Task.WaitAsync(ct);
        }
        WakeNow();
        return await next;
    }

    private Task<ReconcileModel> WaitNextAsync(CancellationToken ct)
    {
        lock (_requestGate) return _reconciled.Task.WaitAsync(ct);
    }

    private static RequestLoadResponse Refuse(string reason, string message) => new() { Accepted = false, Reason = reason, Message = message };

    /// <summary>One decide → apply → record pass. Returns when the next pass is due at the latest.</summary>
    internal async Task<DateTimeOffset> ReconcileOnceAsync(CancellationToken ct)
    {
        // A pass a gateway's request waits on continues that request's trace.
        using var activity = _traces.StartActivity(ControlPlaneTelemetry.ActivitySource, "reconcile");
        var started = _time.GetTimestamp();
        var now = _time.GetUtcNow();
        _startedAt ??= now;
        var home = _home.Current;
        await _engines.SyncAsync(home.Engines);
        var connections = _engines.Connections;
        var views = connections.ToDictionary(c => c.Endpoint.Name, c => c.View, StringComparer.Ordinal);

        // Learn from what the sidecars report before deciding: failures back off, successes clear.
        ObserveEngineStates(views.Values, now);

        // Decide 1: validate and discover each declared object; one broken object never stops the others.
        var resources = new List<ResourceState>();
        foreach (var declared in home.Adapters)
        {
            var specError = declared.ReadError ?? LoraAdapterValidator.Validate(declared.Resource);
            DiscoveryResult? discovery = null;
            DateTimeOffset? nextDiscovery = null;
            if (specError is null)
                (discovery, nextDiscovery) = await DiscoverAsync(declared, now, ct);
            resources.Add(new ResourceState(declared, specError, discovery, nextDiscovery, [], [],
                declared.Resource.Spec.DeploymentConfig?.LoadOnStartup ?? true));
        }
        foreach (var gone in _discoveries.Keys.Where(k => home.Adapters.All(d => d.Key != k)).ToList()) _discoveries.Remove(gone);

        // Decide 2: names. An adapter name is the lora_name on shared engines, so it must be unique;
        // the oldest declaration keeps it.
        var owners = new Dictionary<string, (ResourceState Resource, DiscoveredAdapter Adapter)>(StringComparer.Ordinal);
        var ordered = resources
            .Where(r => r.Discovery is { SourceError: null })
            .OrderBy(r => r.Declared.Resource.Metadata.CreationTimestamp ?? DateTime.MaxValue)
            .ThenBy(r => r.Key, StringComparer.Ordinal)
            .ToList();
        var finalResources = new Dictionary<string, ResourceState>(StringComparer.Ordinal);
        foreach (var r in ordered)
        {
            var owned = new List<DiscoveredAdapter>();
            var conflicts = new List<AdapterFailure>();
            foreach (var a in r.Discovery!.Adapters)
            {
                if (owners.TryGetValue(a.Name, out var holder))
                    conflicts.Add(new AdapterFailure(a.Name, LoraAdapterReasons.NameConflict,
                        $"adapter name '{a.Name}' is already exposed by the older LoraAdapter {holder.Resource.Key}; rename or remove one of them."));
                else
                {
                    owned.Add(a);
                    owners[a.Name] = (r, a);
                }
            }
            finalResources[r.Key] = r with { Owned = owned, Conflicts = conflicts };
        }
        resources = [.. resources.Select(r => finalResources.TryGetValue(r.Key, out var f) ? f : r)];
        foreach (var (name, (r, _)) in owners.ToList()) owners[name] = (finalResources[r.Key], owners[name].Adapter);

        string[] requested;
        lock (_requestGate)
        {
            foreach (var gone in _requested.Keys.Where(n => !owners.ContainsKey(n)).ToList()) _requested.Remove(gone);
            requested = [.. _requested.Keys];
        }

        // Decide 3: demands and the engine snapshot, then solve.
        // In name order: the solver then finds its input already sorted, here and in RequestLoad's what-if solves.
        var demands = new Dictionary<string, AdapterDemand>(StringComparer.Ordinal);
        var rates = _demand.Rates();
        _backoff.ForgetChangedSources(owners.ToDictionary(o => o.Key, o => o.Value.Adapter.Uri, StringComparer.Ordinal));
        foreach (var (name, (r, a)) in owners.OrderBy(o => o.Key, StringComparer.Ordinal))
        {
            if (!r.LoadOnStartup && !requested.Contains(name)) continue;
            demands[name] = ToDemand(r.Declared.Resource.Spec, a, _backoff.Excluded(name, now)) with { RequestRate = rates.GetValueOrDefault(name) };
        }
        var bytesPerRank = BytesPerRank(owners.Values.Select(o => (o.Resource.Declared.Resource.Spec.BaseModel, o.Adapter)));
        Dictionary<string, DateTimeOffset> drained;
        lock (_requestGate)
        {
            foreach (var gone in _drained.Keys.Where(e => home.Engines.All(h => h.Name != e)).ToList()) _drained.Remove(gone);
            drained = new(_drained, StringComparer.Ordinal);
        }
        var placed = new List<EngineSnapshot>();
        foreach (var view in views.Values)
        {
            if (view.Info is null) continue; // facts unknown until the sidecar first reports
            // Drained (going away) or asleep (woken when needed): no new adapters or replica moves land there. It is
            // not sent a desired set either, so it keeps what it holds; awake and undrained it is a target again.
            if (drained.ContainsKey(view.Endpoint.Name) || view.Sleeping) continue;
            if (!view.Connected && view.DisconnectedSince is { } since && now - since >= _options.EngineGracePeriod) continue;
            var current = _lastPlan?.EngineAdapters.ContainsKey(view.Endpoint.Name) == true
                ? _lastPlan.AdaptersOn(view.Endpoint.Name)
                : view.SentAdapters ?? [.. view.Adapters.Values.Where(a => a.Phase is not (AdapterPhase.Failed or AdapterPhase.Unloading)).Select(a => a.Name)];
            placed.Add(new EngineSnapshot(view.Endpoint.Name, view.Node, [.. view.Info.BaseModels], view.Endpoint.Labels,
                view.Info.MaxLoras, view.Info.MaxCpuLoras, view.Info.MaxLoraRank, MemoryBudget(view.Info, bytesPerRank), current, view.Info.CacheBudgetBytes));
        }
        var solveStarted = _time.GetTimestamp();
        var plan = PlacementSolver.Solve(new ClusterSnapshot(placed), [.. demands.Values], _placement);
        ControlPlaneTelemetry.SolveDuration.Record(_time.GetElapsedTime(solveStarted).TotalSeconds);
        _lastPlan = plan;
        foreach (var p in plan.Preemptions)
        {
            LogPreempted(_logger, p.Victim, p.Engine, p.By);
            ControlPlaneTelemetry.Preemptions.Add(1);
            _preempted[p.Victim] = p;
        }
        foreach (var name in _preempted.Keys.Where(n => !plan.Shortfalls.ContainsKey(n)).ToList()) _preempted.Remove(name);
        if (_preempted.Count > 0)
        {
            var shortfalls = plan.Shortfalls.ToDictionary(StringComparer.Ordinal);
            foreach (var (name, p) in _preempted)
                if (shortfalls[name].Reason == LoraAdapterReasons.InsufficientCapacity)
                    shortfalls[name] = new Shortfall(LoraAdapterReasons.Preempted,
                        $"preempted on {p.Engine} by higher-priority adapter '{p.By}'; {shortfalls[name].Message}");
            plan = plan with { Shortfalls = shortfalls };
            _lastPlan = plan;
        }

        // Overflow grants over the solved plan; _lastPlan stays the solver's own, so the next solve never
        // mistakes an overflow replica for placement (see OverflowGrants).
        OverflowGrant[] grants;
        lock (_requestGate)
        {
            foreach (var key in _grants.Where(g => g.Value.Expires <= now || !owners.ContainsKey(g.Key.Adapter) || !views.ContainsKey(g.Key.Engine) || drained.ContainsKey(g.Key.Engine) || views[g.Key.Engine].Sleeping)
                         .Select(g => g.Key).ToList())
                _grants.Remove(key);
            grants = [.. _grants.Values];
        }
        var solved = plan;
        plan = OverflowGrants.Apply(plan, new ClusterSnapshot(placed), [.. demands.Values], grants, now, _options.Overflow.ExtraSlotsPerEngine);

        // After a (re)start, act only once every engine has reported what it holds (or the grace period
        // is over): placing on the first engines to answer would move adapters that are already loaded
        // elsewhere, i.e. duplicate loads and churn.
        var enginesSynced = views.Values.All(v => v.Info is not null) || now - _startedAt.Value >= _options.EngineGracePeriod;
        if (!enginesSynced) _lastPlan = null;

        // Apply: one complete desired set per engine, sent only when it changed. Followers decide
        // (their routing tables serve the gateways that reach them) but only the leader drives sidecars.
        var sends = new List<Task<bool>>();
        foreach (var connection in enginesSynced && _leadership.IsLeader ? connections : [])
        {
            if (!plan.EngineAdapters.TryGetValue(connection.Endpoint.Name, out var names)) continue;
            var desired = names.Select(n => ToSpec(owners[n].Adapter, owners[n].Resource.Declared.Resource)).ToList();
            foreach (var n in names)
                if (!views[connection.Endpoint.Name].Adapters.TryGetValue(n, out var s) || s.Phase != AdapterPhase.Loaded)
                    _backoff.AttemptStarted(n, connection.Endpoint.Name);
            sends.Add(connection.EnsureAsync(desired, ct));
        }
        await Task.WhenAll(sends);
        views = connections.ToDictionary(c => c.Endpoint.Name, c => c.View, StringComparer.Ordinal);
        _backoff.Retain(owners.Keys.ToHashSet(StringComparer.Ordinal), views.Keys.ToHashSet(StringComparer.Ordinal));

        // Record: status for every object, the routing table for gateways.
        var model = new ReconcileModel(++_sequence, now, resources, owners, demands, plan, [.. views.Values], placed, home.Problems, grants, solved) { Drained = drained };
        var written = new List<LoraAdapter>();
        var nowUtc = now.UtcDateTime;
        foreach (var r in resources)
        {
            var status = StatusBuilder.Build(r, model, views, _backoff, _previous.GetValueOrDefault(r.Key), nowUtc);
            _previous[r.Key] = status;
            written.Add(WithStatus(r.Declared.Resource, status));
        }
        foreach (var gone in _previous.Keys.Where(k => !finalResources.ContainsKey(k) && resources.All(r => r.Key != k)).ToList()) _previous.Remove(gone);
        await _home.WriteStatusAsync(written, ct);
        _phases.Record(written.Select(w => w.Status!));
        if (_routes.Publish(RoutingTableBuilder.Build(model, views, _options.EngineGracePeriod)))
            LogRoutesPublished(_logger, _routes.Current.Version, owners.Count, views.Count);

        _model = model;
        TaskCompletionSource<ReconcileModel> signal;
        lock (_requestGate)
        {
            signal = _reconciled;
            _reconciled = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        signal.TrySetResult(model);

        ControlPlaneTelemetry.Reconciles.Add(1);
        ControlPlaneTelemetry.ReconcileDuration.Record(_time.GetElapsedTime(started).TotalSeconds);
        activity?.SetTag("hybridserving.adapters", owners.Count);
        activity?.SetTag("hybridserving.engines", placed.Count);

        // When must we look again without being woken?
        var next = now + _options.ResyncInterval;
        if (!enginesSynced && _startedAt.Value + _options.EngineGracePeriod < next) next = _startedAt.Value + _options.EngineGracePeriod;
        foreach (var due in _discoveries.Values.Select(d => d.ValidUntil)) if (due < next) next = due;
        if (_backoff.NextDue(now) is { } retry && retry < next) next = retry;
        foreach (var g in grants) if (g.Expires < next) next = g.Expires;
        foreach (var v in views.Values)
        {
            if (v.NextEnsureAttempt is { } e && e < next) next = e;
            if (!v.Connected && v.DisconnectedSince is { } since && since + _options.EngineGracePeriod is var expiry && expiry > now && expiry < next) next = expiry;
        }
        return next;
    }

    private void ObserveEngineStates(IEnumerable<EngineView> views, DateTimeOffset now)
    {
        foreach (var view in views)
        {
            if (view.SentAdapters is null) continue;
            foreach (var name in view.SentAdapters)
            {
                if (!view.Adapters.TryGetValue(name, out var state)) continue;
                if (state.Phase == AdapterPhase.Loaded) _backoff.Succeeded(name, view.Endpoint.Name);
                else if (state.Phase == AdapterPhase.Failed
                         && _backoff.Failed(name, view.Endpoint.Name, state.Reason is { Length: > 0 } r ? r : LoraAdapterReasons.LoadFailed, state.Message, now, state.Source))
                {
                    LogLoadFailed(_logger, name, view.Endpoint.Name, state.Reason, state.Message);
                    ControlPlaneTelemetry.LoadFailures.Add(1);
                }
            }
        }
    }

    private async Task<(DiscoveryResult, DateTimeOffset?)> DiscoverAsync(DeclaredAdapter declared, DateTimeOffset now, CancellationToken ct)
    {
        var spec = declared.Resource.Spec;
        var fingerprint = KubernetesJson.Serialize(spec.AdapterSource) + "|" + declared.BaseDirectory + "|" + spec.CredentialsSecretRef?.Name;
        if (_discoveries.TryGetValue(declared.Key, out var entry) && entry.Fingerprint == fingerprint && entry.ValidUntil > now)
            return (entry.Result, entry.Result.SourceError is null ? null : entry.ValidUntil);

        DiscoveryResult result;
        try
        {
            result = await _discovery.DiscoverAsync(new DiscoveryRequest(spec.AdapterSource, declared.BaseDirectory,
                spec.CredentialsSecretRef?.Name, declared.Resource.Metadata.NamespaceProperty ?? "default"), ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            result = DiscoveryResult.Unavailable(LoraAdapterReasons.SourceUnavailable, $"listing the source failed: {e.Message}");
            LogSourceFailureDetail(_logger, declared.Key, e);
        }
        var failures = result.SourceError is null ? 0 : (entry?.Fingerprint == fingerprint ? entry.Failures : 0) + 1;
        var validUntil = failures == 0 ? now + _options.ResyncInterval : now + Backoff.Delay(_options.BackoffInitial, _options.BackoffMax, failures);
        _discoveries[declared.Key] = new DiscoveryEntry(fingerprint, result, validUntil, failures);
        // Once per backoff step (the entry is cached until validUntil), with its reason; the stack trace at Debug.
        if (result.SourceError is not null) LogSourceUnavailable(_logger, declared.Key, result.SourceError, failures, validUntil - now);
        return (result, failures == 0 ? null : validUntil);
    }

    /// <summary>Per base model, the most bytes per unit of LoRA rank among its discovered adapters: an adapter's size
    /// grows linearly with its rank for one base model and set of target modules.</summary>
    internal static Dictionary<string, long> BytesPerRank(IEnumerable<(string BaseModel, DiscoveredAdapter Adapter)> adapters)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (model, adapter) in adapters)
        {
            if (adapter.Rank <= 0 || adapter.SizeBytes <= 0) continue;
            var perRank = (adapter.SizeBytes + adapter.Rank - 1) / adapter.Rank;
            if (perRank > result.GetValueOrDefault(model)) result[model] = perRank;
        }
        return result;
    }

    /// <summary>
    /// The adapter memory an engine has: what its sidecar reports (<c>Sidecar:AdapterMemoryBudgetBytes</c>), else what
    /// its own configuration implies, as vLLM sizes its LoRA caches: <c>max(max_loras, max_cpu_loras)</c> slots of an
    /// adapter at <c>max_lora_rank</c>, whose size comes from the adapters known for the engine's base models. So an
    /// adapter declaring <c>resourceRequirements.memory</c> above its own size uses up more than one slot's share, and
    /// one declaring more than the whole budget fits nowhere. 0 (unknown) until an adapter of a served model is known.
    /// </summary>
    internal static long MemoryBudget(EngineInfo info, IReadOnlyDictionary<string, long> bytesPerRank)
    {
        if (info.AdapterMemoryBudgetBytes > 0) return info.AdapterMemoryBudgetBytes;
        if (info.MaxLoraRank <= 0) return 0;
        var perRank = info.BaseModels.Select(m => bytesPerRank.GetValueOrDefault(m)).DefaultIfEmpty(0).Max();
        var slots = Math.Max(info.MaxLoras, info.MaxCpuLoras);
        return perRank <= 0 || slots <= 0 ? 0 : perRank * info.MaxLoraRank * slots;
    }

    private static AdapterDemand ToDemand(LoraAdapterSpec spec, DiscoveredAdapter adapter, IReadOnlySet<string>? excluded)
    {
        var (min, max) = ReplicaBounds(spec.DeploymentConfig?.Replicas);
        var memory = adapter.SizeBytes;
        if (spec.SchedulingConfig?.ResourceRequirements?.Memory is { } m && Quantity.TryParseBytes(m, out var declared)) memory = Math.Max(memory, declared);
        return new AdapterDemand(adapter.Name, spec.BaseModel, adapter.Rank, memory, ToSelector(spec.DeploymentConfig?.PodSelector),
            min, max, spec.SchedulingConfig?.Priority ?? 0,
            (spec.SchedulingConfig?.PreemptionPolicy ?? PreemptionPolicies.LowerPriority) == PreemptionPolicies.LowerPriority, excluded,
            StorageBytes: adapter.SizeBytes);
    }

    /// <summary>
    /// <c>spec.deploymentConfig.replicas</c> as placement bounds: <c>all</c> = 1..every engine; not given =
    /// exactly one; a missing min is 1 (0 when max is 0), a missing max is the min (at least 1).
    /// </summary>
    internal static (int Min, int Max) ReplicaBounds(ReplicaConfig? replicas)
    {
        if (replicas?.All == true) return (1, int.MaxValue);
        var min = replicas?.Min ?? Math.Min(1, replicas?.Max ?? 1);
        return (min, replicas?.Max ?? Math.Max(min, 1));
    }

    internal static EngineSelector ToSelector(V1LabelSelector? selector) => selector is null
        ? EngineSelector.Everything
        : new EngineSelector(
            new Dictionary<string, string>(selector.MatchLabels ?? new Dictionary<string, string>(), StringComparer.Ordinal),
            [.. (selector.MatchExpressions ?? []).Select(e => new SelectorRequirement(e.Key, e.OperatorProperty, [.. e.Values ?? []]))]);

    private AdapterSpec ToSpec(DiscoveredAdapter adapter, LoraAdapter resource) => new()
    {
        Name = adapter.Name,
        Source = adapter.Uri,
        Sha256 = adapter.Digest,
        BaseModel = resource.Spec.BaseModel,
        Pinned = false,
        CredentialsSecret = resource.Spec.CredentialsSecretRef is { Name: { Length: > 0 } secret }
            ? _secrets.SidecarReference(secret, resource.Metadata.NamespaceProperty ?? "default") ?? ""
            : "",
    };

    private static LoraAdapter WithStatus(LoraAdapter resource, LoraAdapterStatus status)
    {
        // A copy: the declared object belongs to the home.
        var copy = KubernetesJson.Deserialize<LoraAdapter>(KubernetesJson.Serialize(resource));
        copy.Status = status;
        return copy;
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Error, Message = "Reconcile failed; retrying")]
    private static partial void LogReconcileFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Adapter {Adapter} failed on engine {Engine} ({Reason}): {Message}; backing off")]
    private static partial void LogLoadFailed(ILogger logger, string adapter, string engine, string reason, string message);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "Adapter {Victim} preempted on {Engine} by {By}")]
    private static partial void LogPreempted(ILogger logger, string victim, string engine, string by);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "Routing table version {Version}: {Adapters} adapter(s), {Engines} engine(s)")]
    private static partial void LogRoutesPublished(ILogger logger, long version, int adapters, int engines);

    [LoggerMessage(EventId = 305, Level = LogLevel.Information, Message = "Evicting on-demand adapter(s) {Victims} to make room for requested {Adapter}")]
    private static partial void LogEvicted(ILogger logger, string victims, string adapter);

    [LoggerMessage(EventId = 306, Level = LogLevel.Information, Message = "Overflow load of {Adapter} on {Engine}: {Reason}")]
    private static partial void LogOverflow(ILogger logger, string adapter, string engine, string reason);

    [LoggerMessage(EventId = 307, Level = LogLevel.Debug, Message = "Overflow load of {Adapter} on {Engine} refused ({Reason}): {Message}")]
    private static partial void LogOverflowRefused(ILogger logger, string adapter, string engine, string reason, string message);

    [LoggerMessage(EventId = 304, Level = LogLevel.Warning, Message = "LoraAdapter {Key}: source unavailable (attempt {Attempt}, next in {RetryIn}): {Message}")]
    private static partial void LogSourceUnavailable(ILogger logger, string key, string message, int attempt, TimeSpan retryIn);

    [LoggerMessage(EventId = 308, Level = LogLevel.Debug, Message = "LoraAdapter {Key}: listing the source failed, in full")]
    private static partial void LogSourceFailureDetail(ILogger logger, string key, Exception exception);
}
