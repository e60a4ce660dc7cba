using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Homes;
using k8s;
using k8s.Models;

namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>
/// The Kubernetes home: LoraAdapters (all namespaces) and engine pods (by label) from list-then-watch
/// informers; status written to the status subresource, only when it changed, under a mutation budget;
/// a finalizer on every LoraAdapter so that a deleted one is unloaded everywhere before it goes; events
/// for notable transitions; and a Lease so that only one replica writes and actuates.
/// <para>
/// Deletion: an object with a deletionTimestamp leaves <see cref="Current"/>, so the reconciler stops
/// placing its adapters and sends every engine a desired set without them. The finalizer is removed
/// once the reconciler has recorded a pass without the object and no engine reports any of its adapter
/// names any more (names that another live LoraAdapter now exposes excepted).
/// </para>
/// <para>
/// Leadership gate: <see cref="Synced"/> is true only on the leader, so the reconciler (which decides only
/// when its home is synced) actuates on one replica; followers keep their caches warm. Writes to the
/// cluster are made by the leader only, whatever the reconciler does.
/// </para>
/// </summary>
internal sealed partial class KubernetesHome : IControlPlaneHome, IAsyncDisposable
{
    public const string AdaptersPath = "apis/" + LoraAdapter.Group + "/" + LoraAdapter.Version + "/" + LoraAdapter.Plural;
    public const string PodsPath = "api/v1/pods";

    private readonly KubeApi _api;
    private readonly KubernetesHomeOptions _options;
    private readonly IControlPlaneLeadership _leadership;
    private readonly IAdapterResidency _residency;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ResourceInformer _adapters;
    private readonly ResourceInformer _pods;
    private readonly MutationBudget _budget;
    private readonly AdapterEvents _events;
    private readonly AdapterServices? _services;
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<bool> _snapshotWake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Channel<bool> _writerWake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Lock _gate = new();
    private readonly Dictionary<string, LoraAdapterStatus> _pendingStatus = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DeletionState> _deleting = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Rv, DeclaredAdapter Declared, string Fingerprint)> _declaredCache = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Rv, V1Pod Pod)> _podCache = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (int Failures, DateTimeOffset NotBefore)> _retry = new(StringComparer.Ordinal);
    private Task? _snapshotLoop;
    private Task? _writerLoop;
    private volatile HomeSnapshot _current = HomeSnapshot.Empty;
    private string _fingerprint = "";
    private long _statusWrites;
    private long _statusSkips;
    private long _conflicts;
    private bool _settled;
    // Set once Current holds the informers' first complete picture (not the empty one from before).
    private volatile bool _built;
    private bool _settledAtLastRead;
    private bool _droppedWhileUnsettled;
    private DateTimeOffset _settleSince;

    private sealed class DeletionState(string? uid, IReadOnlySet<string> names)
    {
        public string? Uid { get; } = uid;
        public IReadOnlySet<string> Names { get; } = names;
        /// <summary>A status pass left the object out: the reconciler no longer places its adapters.</summary>
        public bool Reconciled { get; set; }
        public bool Announced { get; set; }
    }

    public KubernetesHome(KubeApi api, KubernetesHomeOptions options, IControlPlaneLeadership leadership, IAdapterResidency residency,
        TimeProvider time, ILoggerFactory loggers, string identity)
    {
        _api = api;
        _options = options;
        _leadership = leadership;
        _residency = residency;
        _time = time;
        _logger = loggers.CreateLogger("HybridServing.ControlPlane.Kubernetes.KubernetesHome");
        var informerLogger = loggers.CreateLogger("HybridServing.ControlPlane.Kubernetes.ResourceInformer");
        _adapters = new ResourceInformer("loraadapters", api, AdaptersPath, null, options, time, informerLogger);
        _pods = new ResourceInformer("engine-pods", api, PodsPath, options.EngineSelector, options, time, informerLogger);
        _budget = new MutationBudget(options.MutationsPerSecond, options.MutationBurst, time);
        _events = new AdapterEvents(api, options, identity, time, _logger);
        if (options.AdapterServices) _services = new AdapterServices(api, options, _budget, time, loggers.CreateLogger("HybridServing.ControlPlane.Kubernetes.AdapterServices"));
        _adapters.Changed += OnInformerChanged;
        _pods.Changed += OnInformerChanged;
        _residency.Changed += WakeWriter;
        _leadership.LeadershipChanged += OnLeadershipChanged;
    }

    public string Kind => "Kubernetes";
    public HomeSnapshot Current
    {
        get
        {
            var current = _current;
            // The reconciler reads Current when a pass starts: remember whether the sidecars had all reported
            // by then, so that the statuses of a pass that began with a half picture are not recorded.
            if (!Volatile.Read(ref _settled)) Volatile.Write(ref _settledAtLastRead, _built && _residency.Settled(current.Engines));
            return current;
        }
    }

    /// <summary>Both informers have listed, and this replica leads (followers do not decide unless <see cref="KubernetesHomeOptions.ReconcileOnFollowers"/>).</summary>
    public bool Synced => _built && InformersSynced && (_leadership.IsLeader || _options.ReconcileOnFollowers);

    public bool InformersSynced => _adapters.Synced && _pods.Synced;
    public bool IsLeader => _leadership.IsLeader;
    public event Action? Changed;

    internal ResourceInformer AdapterInformer => _adapters;
    internal ResourceInformer PodInformer => _pods;
    internal MutationBudget Budget => _budget;
    internal AdapterEvents Events => _events;
    internal AdapterServices? Services => _services;

    /// <summary>Status writes made (PUTs that succeeded).</summary>
    public long StatusWrites => Interlocked.Read(ref _statusWrites);

    /// <summary>Statuses not written because the stored one already said the same.</summary>
    public long StatusSkips => Interlocked.Read(ref _statusSkips);

    /// <summary>409 Conflicts met (each re-read and retried).</summary>
    public long Conflicts => Interlocked.Read(ref _conflicts);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lock (_gate) _settleSince = _time.GetUtcNow();
        _adapters.Start();
        _pods.Start();
        _snapshotLoop ??= Task.Run(() => SnapshotLoopAsync(_stop.Token), CancellationToken.None);
        _writerLoop ??= Task.Run(() => WriterLoopAsync(_stop.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public ValueTask WriteStatusAsync(IReadOnlyList<LoraAdapter> adapters, CancellationToken cancellationToken)
    {
        // Followers never write; the leader's next pass writes everything that differs.
        if (!_leadership.IsLeader) return ValueTask.CompletedTask;
        lock (_gate)
        {
            // After a start or a new leadership, a pass made before every sidecar reported describes a half
            // picture (Pending everywhere): it is not recorded; the first pass after the reports is.
            if (!_settled && (Volatile.Read(ref _settledAtLastRead) || _time.GetUtcNow() - _settleSince >= _options.StatusSettleTimeout)) _settled = true;
            var record = _settled;
            if (!record) _droppedWhileUnsettled = true;
            var keys = new HashSet<string>(StringComparer.Ordinal);
            foreach (var a in adapters)
            {
                if (a.Status is null) continue;
                var key = $"{a.Metadata.NamespaceProperty ?? "default"}/{a.Metadata.Name}";
                keys.Add(key);
                // Latest wins: a burst of passes becomes one write per object.
                if (record) _pendingStatus[key] = a.Status;
            }
            foreach (var (key, state) in _deleting)
                if (!keys.Contains(key)) state.Reconciled = true;
        }
        WakeWriter();
        return ValueTask.CompletedTask;
    }

    private void OnInformerChanged()
    {
        _snapshotWake.Writer.TryWrite(true);
        WakeWriter();
    }

    private void OnLeadershipChanged()
    {
        if (_leadership.IsLeader)
        {
            // A new leader starts from the cluster's statuses, not from what it queued as a follower,
            // and waits for the sidecars' first reports before recording anything.
            lock (_gate)
            {
                _pendingStatus.Clear();
                _settled = false;
                _settledAtLastRead = false;
                _settleSince = _time.GetUtcNow();
            }
        }
        WakeWriter();
        Changed?.Invoke();
    }

    private void WakeWriter() => _writerWake.Writer.TryWrite(true);

    // ------------------------------------------------------------------ snapshot

    private async Task SnapshotLoopAsync(CancellationToken ct)
    {
        try
        {
            while (await _snapshotWake.Reader.WaitToReadAsync(ct))
            {
                // Let a burst of watch events settle into one rebuild.
                await Task.Delay(_options.SnapshotDebounce, _time, ct);
                while (_snapshotWake.Reader.TryRead(out _)) { }
                try
                {
                    Rebuild();
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogRebuildFailed(_logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    internal void Rebuild()
    {
        if (!InformersSynced) return;
        var declared = new List<DeclaredAdapter>();
        var fingerprint = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var liveKeys = new HashSet<string>(StringComparer.Ordinal);
        var deletingNow = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var (key, obj) in _adapters.Objects.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var meta = obj.GetProperty("metadata");
            if (meta.TryGetProperty("deletionTimestamp", out var dt) && dt.ValueKind == JsonValueKind.String)
            {
                deletingNow[key] = obj;
                continue;
            }
            liveKeys.Add(key);
            var rv = ResourceInformer.ResourceVersionOf(obj) ?? "";
            if (!_declaredCache.TryGetValue(key, out var cached) || cached.Rv != rv)
            {
                var d = Declare(key, obj);
                var spec = obj.TryGetProperty("spec", out var s) ? s.GetRawText() : "";
                cached = (rv, d, $"{key}|{d.Resource.Metadata.Uid}|{d.Resource.Metadata.Generation}|{spec}|{d.ReadError}\n");
                _declaredCache[key] = cached;
            }
            declared.Add(cached.Declared);
            fingerprint.AppendData(Encoding.UTF8.GetBytes(cached.Fingerprint));
        }
        foreach (var gone in _declaredCache.Keys.Where(k => !liveKeys.Contains(k)).ToList()) _declaredCache.Remove(gone);

        var newDeletions = false;
        lock (_gate)
        {
            foreach (var (key, obj) in deletingNow)
            {
                if (_deleting.ContainsKey(key)) continue;
                newDeletions = true;
                var names = NamesIn(obj);
                _deleting[key] = new DeletionState(UidOf(obj), names);
                LogDeleting(_logger, key, names.Count);
            }
            foreach (var gone in _deleting.Keys.Where(k => !deletingNow.ContainsKey(k)).ToList()) _deleting.Remove(gone);
            // A deletion wakes the reconciler even for an object it never saw, so that a pass without it is recorded.
            foreach (var key in deletingNow.Keys.Order(StringComparer.Ordinal)) fingerprint.AppendData(Encoding.UTF8.GetBytes($"deleting|{key}\n"));
            foreach (var gone in _pendingStatus.Keys.Where(k => !liveKeys.Contains(k)).ToList()) _pendingStatus.Remove(gone);
        }

        // The writer announces the deletion and later lets the object go.
        if (newDeletions) WakeWriter();

        var pods = new List<V1Pod>();
        var seenPods = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, obj) in _pods.Objects)
        {
            seenPods.Add(key);
            var rv = ResourceInformer.ResourceVersionOf(obj) ?? "";
            if (!_podCache.TryGetValue(key, out var cached) || cached.Rv != rv)
                _podCache[key] = cached = (rv, KubernetesJson.Deserialize<V1Pod>(obj.GetRawText()));
            pods.Add(cached.Pod);
        }
        foreach (var gone in _podCache.Keys.Where(k => !seenPods.Contains(k)).ToList()) _podCache.Remove(gone);
        var (engines, problems) = EnginePods.Select(pods, _options.SidecarGrpcPortAnnotation, _options.DefaultSidecarGrpcPort);
        foreach (var e in engines)
            fingerprint.AppendData(Encoding.UTF8.GetBytes($"engine|{e.Name}|{e.Node}|{e.SidecarUrl}|{string.Join(",", e.Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}"))}\n"));
        foreach (var p in problems) fingerprint.AppendData(Encoding.UTF8.GetBytes($"problem|{p.Message}\n"));

        _current = new HomeSnapshot(declared, engines, problems);
        var first = !_built;
        _built = true;
        var hash = Convert.ToHexString(fingerprint.GetHashAndReset());
        if (hash == _fingerprint && !first) return;
        _fingerprint = hash;
        foreach (var p in problems) LogProblem(_logger, p.Origin, p.Message);
        LogSnapshot(_logger, declared.Count, engines.Count, deletingNow.Count);
        // Engines coming or going decide whether a deleting object can go (no engine left to hold it).
        if (deletingNow.Count > 0) WakeWriter();
        Changed?.Invoke();
    }

    /// <summary>The object as a declared adapter; one that cannot be read is still named and carries the reason (InvalidSpec).</summary>
    internal static DeclaredAdapter Declare(string key, JsonElement obj)
    {
        var origin = $"LoraAdapter {key}";
        try
        {
            var adapter = KubernetesJson.Deserialize<LoraAdapter>(obj.GetRawText());
            adapter.Metadata.NamespaceProperty ??= "default";
            return new DeclaredAdapter(adapter, null, origin);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or ArgumentException or NotSupportedException)
        {
            // A field of the wrong type or format (a cluster without the CRD's schema lets it through; the client's
            // converters throw FormatException for a bad RFC 3339 time): the object is still named and gets
            // InvalidSpec naming the field, instead of disappearing or stopping every other object's reconcile.
            var field = e is JsonException { Path: { Length: > 0 } path } ? path.TrimStart('$', '.') : "spec";
            return new DeclaredAdapter(new LoraAdapter { Metadata = MetadataOf(key, obj) }, null, origin, $"{field}: {FirstSentence(e.Message)}");
        }
    }

    /// <summary>The object's metadata, else (it cannot be read either) the name and namespace its key gives.</summary>
    private static V1ObjectMeta MetadataOf(string key, JsonElement obj)
    {
        try
        {
            var meta = KubernetesJson.Deserialize<V1ObjectMeta>(obj.GetProperty("metadata").GetRawText());
            meta.NamespaceProperty ??= "default";
            return meta;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or ArgumentException or NotSupportedException or KeyNotFoundException)
        {
            var slash = key.IndexOf('/');
            return new V1ObjectMeta { NamespaceProperty = slash > 0 ? key[..slash] : "default", Name = key[(slash + 1)..] };
        }
    }

    private static string FirstSentence(string message)
    {
        var i = message.IndexOf(". Path:", StringComparison.Ordinal);
        return i > 0 ? message[..i] + "." : message;
    }

    private static string? UidOf(JsonElement obj) =>
        obj.GetProperty("metadata").TryGetProperty("uid", out var u) ? u.GetString() : null;

    /// <summary>Adapter names an object exposed, from its last recorded status.</summary>
    private static IReadOnlySet<string> NamesIn(JsonElement obj)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        if (!obj.TryGetProperty("status", out var status) || status.ValueKind != JsonValueKind.Object) return names;
        if (status.TryGetProperty("adapters", out var adapters) && adapters.ValueKind == JsonValueKind.Array)
            foreach (var a in adapters.EnumerateArray())
                if (a.TryGetProperty("name", out var n) && n.GetString() is { } s) names.Add(s);
        if (status.TryGetProperty("loadedAdapters", out var loaded) && loaded.ValueKind == JsonValueKind.Array)
            foreach (var n in loaded.EnumerateArray())
                if (n.GetString() is { } s) names.Add(s);
        if (status.TryGetProperty("podAssignments", out var pods) && pods.ValueKind == JsonValueKind.Array)
            foreach (var p in pods.EnumerateArray())
                if (p.TryGetProperty("adapters", out var pa) && pa.ValueKind == JsonValueKind.Array)
                    foreach (var a in pa.EnumerateArray())
                    {
                        // Names (the production-stack proposal's shape); objects with a name as an older status wrote them.
                        if (a.ValueKind == JsonValueKind.String && a.GetString() is { } s) names.Add(s);
                        else if (a.ValueKind == JsonValueKind.Object && a.TryGetProperty("name", out var n) && n.GetString() is { } o) names.Add(o);
                    }
        return names;
    }

    private static bool HasFinalizer(JsonElement obj) =>
        obj.GetProperty("metadata").TryGetProperty("finalizers", out var f) && f.ValueKind == JsonValueKind.Array
        && f.EnumerateArray().Any(x => x.GetString() == KubernetesHomeOptions.Finalizer);

    private static string[] Finalizers(JsonElement obj) =>
        obj.GetProperty("metadata").TryGetProperty("finalizers", out var f) && f.ValueKind == JsonValueKind.Array
            ? [.. f.EnumerateArray().Select(x => x.GetString() ?? "")]
            : [];

    // ------------------------------------------------------------------ writes

    private async Task WriterLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                TimeSpan? wait = null;
                if (_leadership.IsLeader && InformersSynced) wait = await WritePassAsync(ct);
                using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
                var delay = wait ?? _options.ResyncInterval;
                var woken = _writerWake.Reader.ReadAsync(timer.Token).AsTask();
                await Task.WhenAny(woken, Task.Delay(delay, _time, timer.Token));
                await timer.CancelAsync();
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogWritePassFailed(_logger, e);
                try { await Task.Delay(_options.BackoffInitial, _time, ct); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    /// <summary>One pass over what must be written. Returns when to look again for retries, if any.</summary>
    internal async Task<TimeSpan?> WritePassAsync(CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        DateTimeOffset? nextRetry = null;
        var objects = _adapters.Objects;
        foreach (var stale in _retry.Keys.Where(id => !objects.ContainsKey(id[(id.IndexOf(':') + 1)..])).ToList()) _retry.Remove(stale);
        bool Due(string id)
        {
            if (!_retry.TryGetValue(id, out var r) || r.NotBefore <= now) return true;
            if (nextRetry is null || r.NotBefore < nextRetry) nextRetry = r.NotBefore;
            return false;
        }

        // Statuses the reconciler recorded are written only where they differ from what the cluster holds; after a
        // start or a new leadership, only once the sidecars have all reported (no half picture).
        bool settled, askAgain = false;
        lock (_gate)
        {
            if (!_settled && _droppedWhileUnsettled)
            {
                // Passes were dropped while the picture was half. Once it is whole (or we waited long enough),
                // ask for a fresh pass rather than wait for the reconciler's resync; that pass reads Current,
                // which notes that it started with every sidecar reported, and is recorded.
                var timedOut = now - _settleSince >= _options.StatusSettleTimeout;
                if (timedOut) _settled = true;
                if (timedOut || _residency.Settled(_current.Engines))
                {
                    askAgain = true;
                    _droppedWhileUnsettled = false;
                }
            }
            settled = _settled;
        }
        if (askAgain) Changed?.Invoke();
        if (!settled)
        {
            var deadline = _settleSince + _options.StatusSettleTimeout;
            if (nextRetry is null || deadline < nextRetry) nextRetry = deadline;
        }
        // 1. Statuses that change what a user sees first — an object's first status, or a new phase (Ready,
        //    Degraded, ...): with many new objects the budget would otherwise go to finalizers first, and every
        //    object would wait for all the others' finalizers before it could say Ready.
        await WriteStatusesAsync(urgent: true);
        if (!_leadership.IsLeader) return null;

        // 2. Finalizers on live objects (so that a deletion always waits for the unload). Until an object has its
        //    finalizer, deleting it still unloads its adapters (the informer's DELETED event); it just does not wait.
        foreach (var (key, obj) in _adapters.Objects)
        {
            if (!_leadership.IsLeader) return null;
            if (obj.GetProperty("metadata").TryGetProperty("deletionTimestamp", out var dt) && dt.ValueKind == JsonValueKind.String) continue;
            if (HasFinalizer(obj) || !Due("finalizer:" + key)) continue;
            // Statuses that became urgent meanwhile (objects just placed) go before the next finalizer.
            await WriteStatusesAsync(urgent: true);
            await Attempt("finalizer:" + key, () => SetFinalizerAsync(key, add: true, ct));
        }

        // 3. Deleting objects: say so in status, then let them go once unloaded.
        List<(string Key, DeletionState State)> deleting;
        lock (_gate) deleting = [.. _deleting.Select(kv => (kv.Key, kv.Value))];
        if (deleting.Count > 0)
        {
            var resident = _residency.ResidentAdapters();
            var exposedByLive = NamesExposedByLiveObjects();
            foreach (var (key, state) in deleting)
            {
                if (!_leadership.IsLeader) return null;
                if (!_adapters.Objects.TryGetValue(key, out var obj) || !HasFinalizer(obj)) continue;
                if (!Due("delete:" + key)) continue;
                var waiting = state.Names.Where(n => resident.Contains(n) && !exposedByLive.Contains(n)).Order(StringComparer.Ordinal).ToList();
                if (!state.Announced)
                {
                    await Attempt("delete:" + key, () => AnnounceDeletingAsync(key, waiting, ct));
                    state.Announced = true;
                }
                // With no engine pod left and nothing resident, no engine can hold its adapters: it goes without
                // waiting for a reconcile pass (an uninstall deletes the engines and the objects together).
                var enginesGone = _current.Engines.Count == 0 && resident.Count == 0;
                if ((!state.Reconciled && !enginesGone) || waiting.Count > 0) continue;
                await Attempt("delete:" + key, async () =>
                {
                    await SetFinalizerAsync(key, add: false, ct);
                    var (ns, name) = Split(key);
                    _events.Record(new AdapterEvent(ns, name, state.Uid, "Normal", "Unloaded", "Unload",
                        $"all {state.Names.Count} adapter(s) unloaded from every engine; finalizer {KubernetesHomeOptions.Finalizer} removed."));
                });
            }
        }

        // 4. Every other status change (conditions, counts, assignments within the same phase).
        await WriteStatusesAsync(urgent: false);
        if (!_leadership.IsLeader) return null;

        // 5. Adapter Services + EndpointSlices (opt-in), from the statuses as stored: what the cluster says is loaded where.
        if (_services is not null && _leadership.IsLeader
            && await _services.SyncAsync(_adapters.Objects, _pods.Objects, () => _leadership.IsLeader, StatusOrFinalizerDue, ct) is { } servicesRetry
            && (nextRetry is null || servicesRetry < nextRetry))
            nextRetry = servicesRetry;

        // 6. Events, with whatever budget is left.
        await _events.DrainAsync(_budget, ct);
        if (_events.HasPending && (nextRetry is null || nextRetry > now + TimeSpan.FromSeconds(1 / _options.MutationsPerSecond)))
            nextRetry = now + TimeSpan.FromSeconds(1 / _options.MutationsPerSecond);
        return nextRetry is { } n ? (n - _time.GetUtcNow() is var d && d > TimeSpan.Zero ? d : TimeSpan.Zero) : null;

        async Task WriteStatusesAsync(bool urgent)
        {
            List<string> pending;
            lock (_gate) pending = [.. _pendingStatus.Keys.Order(StringComparer.Ordinal)];
            foreach (var key in pending)
            {
                if (!_leadership.IsLeader) return;
                if (!Due("status:" + key)) continue;
                // The newest status for the object, not the one pending when the pass began: writes are
                // rate-limited, and a pass over many objects would otherwise write statuses already superseded.
                LoraAdapterStatus? status;
                lock (_gate) status = _pendingStatus.GetValueOrDefault(key);
                if (status is null || Urgent(key, status) != urgent) continue;
                await Attempt("status:" + key, async () =>
                {
                    await WriteStatusAsync(key, status, ct);
                    lock (_gate)
                    {
                        // Done unless a newer status arrived meanwhile.
                        if (_pendingStatus.TryGetValue(key, out var latest) && ReferenceEquals(latest, status)) _pendingStatus.Remove(key);
                    }
                });
            }
        }

        async Task Attempt(string id, Func<Task> action)
        {
            try
            {
                await action();
                _retry.Remove(id);
            }
            catch (Exception e) when (e is KubeApiException or HttpRequestException or IOException or JsonException && !ct.IsCancellationRequested)
            {
                var failures = (_retry.TryGetValue(id, out var r) ? r.Failures : 0) + 1;
                var delay = TimeSpan.FromMilliseconds(Math.Min(_options.BackoffMax.TotalMilliseconds, _options.BackoffInitial.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 16))));
                var at = _time.GetUtcNow() + delay;
                _retry[id] = (failures, at);
                if (nextRetry is null || at < nextRetry) nextRetry = at;
                LogWriteFailed(_logger, id, failures, delay, e.Message);
            }
        }
    }

    /// <summary>
    /// Whether a status write changes what a user sees: the object has no status yet, or the phase changes.
    /// These go before finalizers and other status updates.
    /// </summary>
    internal bool Urgent(string key, LoraAdapterStatus status)
    {
        if (!_adapters.Objects.TryGetValue(key, out var obj)) return false;
        if (!obj.TryGetProperty("status", out var stored) || stored.ValueKind != JsonValueKind.Object) return true;
        var phase = stored.TryGetProperty("phase", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
        return !string.Equals(phase, status.Phase, StringComparison.Ordinal);
    }

    /// <summary>
    /// A status or a finalizer waits to be written (and is not backing off): adapter Services, which may be
    /// thousands of writes, stop and let it go first.
    /// </summary>
    private bool StatusOrFinalizerDue()
    {
        var now = _time.GetUtcNow();
        bool DueNow(string id) => !_retry.TryGetValue(id, out var r) || r.NotBefore <= now;
        lock (_gate)
            if (_pendingStatus.Keys.Any(k => DueNow("status:" + k))) return true;
        foreach (var (key, obj) in _adapters.Objects)
        {
            if (obj.GetProperty("metadata").TryGetProperty("deletionTimestamp", out var dt) && dt.ValueKind == JsonValueKind.String) continue;
            if (!HasFinalizer(obj) && DueNow("finalizer:" + key)) return true;
        }
        return false;
    }

    private HashSet<string> NamesExposedByLiveObjects()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, obj) in _adapters.Objects)
        {
            if (obj.GetProperty("metadata").TryGetProperty("deletionTimestamp", out var dt) && dt.ValueKind == JsonValueKind.String) continue;
            if (obj.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.Object
                && s.TryGetProperty("adapters", out var a) && a.ValueKind == JsonValueKind.Array)
                foreach (var x in a.EnumerateArray())
                    if (x.TryGetProperty("name", out var n) && n.GetString() is { } name) names.Add(name);
        }
        return names;
    }

    private static (string Ns, string Name) Split(string key)
    {
        var i = key.IndexOf('/');
        return i < 0 ? ("", key) : (key[..i], key[(i + 1)..]);
    }

    private static string ObjectPath(string key)
    {
        var (ns, name) = Split(key);
        return $"apis/{LoraAdapter.Group}/{LoraAdapter.Version}/namespaces/{ns}/{LoraAdapter.Plural}/{name}";
    }

    /// <summary>Adds or removes our finalizer with a merge patch guarded by resourceVersion; a 409 re-reads and retries.</summary>
    private async Task SetFinalizerAsync(string key, bool add, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            if (!_adapters.Objects.TryGetValue(key, out var obj)) return;
            var finalizers = Finalizers(obj).ToList();
            var has = finalizers.Contains(KubernetesHomeOptions.Finalizer);
            if (has == add) return;
            if (add) finalizers.Add(KubernetesHomeOptions.Finalizer);
            else finalizers.RemoveAll(f => f == KubernetesHomeOptions.Finalizer);
            var patch = new JsonObject
            {
                ["metadata"] = new JsonObject
                {
                    ["resourceVersion"] = ResourceInformer.ResourceVersionOf(obj),
                    ["finalizers"] = new JsonArray([.. finalizers.Select(f => (JsonNode)JsonValue.Create(f)!)]),
                },
            };
            await _budget.TakeAsync(ct);
            try
            {
                using var result = await _api.MergePatchAsync(ObjectPath(key), patch, ct);
                // Removing the last finalizer of a deleting object deletes it: drop it rather than write it
                // back (the DELETED event may already have come, and must not be undone).
                if (!add && finalizers.Count == 0 && result.RootElement.GetProperty("metadata").TryGetProperty("deletionTimestamp", out var gone) && gone.ValueKind == JsonValueKind.String)
                    _adapters.Remove(key);
                else
                    _adapters.Upsert(result.RootElement);
                if (add) LogFinalizerAdded(_logger, key);
                else LogFinalizerRemoved(_logger, key);
                return;
            }
            catch (KubeApiException e) when (e.IsNotFound)
            {
                _adapters.Remove(key);
                return;
            }
            catch (KubeApiException e) when (e.IsConflict)
            {
                Interlocked.Increment(ref _conflicts);
                await RereadAsync(key, ct);
            }
        }
        throw new KubeApiException(409, "Conflict", $"LoraAdapter {key}: the finalizer could not be {(add ? "added" : "removed")} after 5 conflicting attempts.");
    }

    /// <summary>Writes one status through the status subresource, if it differs from the stored one; a 409 re-reads and retries.</summary>
    private async Task WriteStatusAsync(string key, LoraAdapterStatus status, CancellationToken ct, bool deleting = false)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            if (!_adapters.Objects.TryGetValue(key, out var obj)) return; // deleted meanwhile
            // Once an object is being deleted, only the Deleting status is written (a late reconcile pass must not overwrite it).
            if (!deleting && obj.GetProperty("metadata").TryGetProperty("deletionTimestamp", out var dts) && dts.ValueKind == JsonValueKind.String) return;
            JsonElement? stored = obj.TryGetProperty("status", out var s) ? s : null;
            var desired = StatusJson.Normalize(status, stored);
            if (StatusJson.Same(desired, stored))
            {
                Interlocked.Increment(ref _statusSkips);
                return;
            }
            var body = (JsonObject)JsonNode.Parse(obj.GetRawText())!;
            body["status"] = desired;
            await _budget.TakeAsync(ct);
            try
            {
                using var result = await _api.PutAsync(ObjectPath(key) + "/status", body, ct);
                _adapters.Upsert(result.RootElement);
                Interlocked.Increment(ref _statusWrites);
                var before = stored is { ValueKind: JsonValueKind.Object } st ? KubernetesJson.Deserialize<LoraAdapterStatus>(st.GetRawText()) : null;
                var (ns, name) = Split(key);
                if (AdapterEvents.ForTransition(ns, name, UidOf(obj), before, status) is { } e) _events.Record(e);
                return;
            }
            catch (KubeApiException e) when (e.IsNotFound)
            {
                _adapters.Remove(key);
                return;
            }
            catch (KubeApiException e) when (e.IsConflict)
            {
                // Someone else wrote the object since we read it: not an error. Re-read and decide again.
                Interlocked.Increment(ref _conflicts);
                LogConflict(_logger, key);
                await RereadAsync(key, ct);
            }
        }
        throw new KubeApiException(409, "Conflict", $"LoraAdapter {key}: status not written after 5 conflicting attempts.");
    }

    private async Task AnnounceDeletingAsync(string key, IReadOnlyList<string> waiting, CancellationToken ct)
    {
        if (!_adapters.Objects.TryGetValue(key, out var obj)) return;
        var status = obj.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.Object
            ? KubernetesJson.Deserialize<LoraAdapterStatus>(s.GetRawText())
            : new LoraAdapterStatus();
        var message = waiting.Count == 0
            ? "the LoraAdapter is being deleted; its adapters are being unloaded."
            : $"the LoraAdapter is being deleted; unloading {waiting.Count} adapter(s) ({string.Join(", ", waiting.Take(5))}{(waiting.Count > 5 ? ", ..." : "")}) from every engine before the finalizer is removed.";
        status.Phase = LoraAdapterPhases.Deleting;
        var conditions = status.Conditions?.Where(c => c.Type != LoraAdapterConditionTypes.Ready).ToList() ?? [];
        conditions.Insert(0, new V1Condition
        {
            Type = LoraAdapterConditionTypes.Ready, Status = "False", Reason = LoraAdapterPhases.Deleting, Message = message,
            ObservedGeneration = obj.GetProperty("metadata").TryGetProperty("generation", out var g) && g.TryGetInt64(out var gen) ? gen : null,
            LastTransitionTime = _time.GetUtcNow().UtcDateTime,
        });
        status.Conditions = conditions;
        await WriteStatusAsync(key, status, ct, deleting: true);
    }

    private async Task RereadAsync(string key, CancellationToken ct)
    {
        try
        {
            using var fresh = await _api.GetAsync(ObjectPath(key), ct);
            _adapters.Upsert(fresh.RootElement);
        }
        catch (KubeApiException e) when (e.IsNotFound)
        {
            _adapters.Remove(key);
        }
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        // The container may dispose a singleton once per registration that resolves it.
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _stop.CancelAsync();
        _snapshotWake.Writer.TryComplete();
        if (_snapshotLoop is not null) await _snapshotLoop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (_writerLoop is not null) await _writerLoop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _adapters.DisposeAsync();
        await _pods.DisposeAsync();
        _residency.Changed -= WakeWriter;
        _leadership.LeadershipChanged -= OnLeadershipChanged;
        _stop.Dispose();
    }

    [LoggerMessage(EventId = 750, Level = LogLevel.Information, Message = "Cluster picture: {Adapters} LoraAdapter(s), {Engines} engine pod(s), {Deleting} being deleted")]
    private static partial void LogSnapshot(ILogger logger, int adapters, int engines, int deleting);

    [LoggerMessage(EventId = 751, Level = LogLevel.Warning, Message = "{Origin}: {Message}")]
    private static partial void LogProblem(ILogger logger, string origin, string message);

    [LoggerMessage(EventId = 752, Level = LogLevel.Error, Message = "Rebuilding the cluster picture failed")]
    private static partial void LogRebuildFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 753, Level = LogLevel.Error, Message = "A write pass failed; retrying")]
    private static partial void LogWritePassFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 754, Level = LogLevel.Warning, Message = "Write {Write} failed (attempt {Failures}), retrying in {Delay}: {Message}")]
    private static partial void LogWriteFailed(ILogger logger, string write, int failures, TimeSpan delay, string message);

    [LoggerMessage(EventId = 755, Level = LogLevel.Debug, Message = "LoraAdapter {Key} changed since it was read (409); re-reading")]
    private static partial void LogConflict(ILogger logger, string key);

    [LoggerMessage(EventId = 756, Level = LogLevel.Information, Message = "LoraAdapter {Key}: finalizer added")]
    private static partial void LogFinalizerAdded(ILogger logger, string key);

    [LoggerMessage(EventId = 757, Level = LogLevel.Information, Message = "LoraAdapter {Key}: unloaded everywhere, finalizer removed")]
    private static partial void LogFinalizerRemoved(ILogger logger, string key);

    [LoggerMessage(EventId = 758, Level = LogLevel.Information, Message = "LoraAdapter {Key} is being deleted; {Names} adapter name(s) to unload first")]
    private static partial void LogDeleting(ILogger logger, string key, int names);
}
