using System.Threading.Channels;
using Google.Protobuf.WellKnownTypes;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Telemetry;

namespace HybridServing.EngineSidecar.Reconciliation;

/// <summary>One adapter the engine should hold.</summary>
/// <param name="CredentialsSecret">"namespace/name" of the Secret to download with (spec.credentialsSecretRef), if any.</param>
internal sealed record DesiredAdapter(string Name, string Source, string? Sha256 = null, bool Pinned = false, string? BaseModel = null,
    string? CredentialsSecret = null)
{
    /// <summary>What identifies the loaded content: a change of any means a reload.</summary>
    public string Fingerprint => Source.Trim() + "|" + (Sha256?.Trim().ToLowerInvariant() ?? "") + "|" + CredentialsSecret;

    public static DesiredAdapter From(AdapterSpec spec) =>
        new(spec.Name, spec.Source, string.IsNullOrWhiteSpace(spec.Sha256) ? null : spec.Sha256, spec.Pinned,
            string.IsNullOrWhiteSpace(spec.BaseModel) ? null : spec.BaseModel,
            string.IsNullOrWhiteSpace(spec.CredentialsSecret) ? null : spec.CredentialsSecret);
}

/// <summary>Which engine adapters that are not desired get unloaded.</summary>
internal enum UnloadScope
{
    /// <summary>No declarative set has arrived yet: unload only what was explicitly unloaded. A restarted sidecar
    /// must not strip the engine bare in the seconds before the control plane sends the set again.</summary>
    ExplicitOnly,
    /// <summary>EnsureAdapters: everything not in the set.</summary>
    AllUndesired,
    /// <summary>File mode (as in the lora-syncer): only the names listed in ensureNotExist.</summary>
    Listed,
}

/// <summary>The sidecar's view of one adapter. Mutated only under the store's lock.</summary>
internal sealed class AdapterRecord(string name)
{
    public string Name { get; } = name;
    public DesiredAdapter? Spec { get; set; }
    public AdapterPhase Phase { get; set; } = AdapterPhase.Pending;
    public string Reason { get; set; } = "";
    public string Message { get; set; } = "";
    public long BytesDownloaded { get; set; }
    public long BytesTotal { get; set; }
    public int Rank { get; set; }
    public long SizeBytes { get; set; }
    public string Digest { get; set; } = "";
    public string LocalPath { get; set; } = "";
    public DateTimeOffset Updated { get; set; }
    /// <summary>The spec fingerprint the engine holds by our hand; null when unknown (e.g. after a sidecar restart).</summary>
    public string? LoadedFingerprint { get; set; }
    public int Failures { get; set; }
    public DateTimeOffset NextAttempt { get; set; }
    /// <summary>"gpu", "cpu", "disk" or "" (unknown), from the engine's vllm:lora_adapter_loaded when it has it.</summary>
    public string Residency { get; set; } = "";

    public bool PermanentlyFailed => Phase == AdapterPhase.Failed && FailureReasons.IsPermanent(Reason);

    public AdapterStatus ToProto() => new()
    {
        Name = Name,
        Phase = Phase,
        Source = Spec?.Source ?? "",
        Reason = Reason,
        Message = Message,
        BytesDownloaded = BytesDownloaded,
        BytesTotal = BytesTotal,
        Rank = Rank,
        SizeBytes = SizeBytes,
        Digest = Digest,
        Updated = Timestamp.FromDateTimeOffset(Updated),
        LocalPath = LocalPath,
        Residency = Phase == AdapterPhase.Loaded ? Residency : "",
        Pinned = Spec?.Pinned ?? false,
    };

    public AdapterRecord Clone() => (AdapterRecord)MemberwiseClone();
}

/// <summary>What a reconcile pass works from: a consistent copy of desired and recorded state.</summary>
internal sealed record ReconcileInputs(
    IReadOnlyDictionary<string, DesiredAdapter> Desired,
    IReadOnlyDictionary<string, AdapterRecord> Records,
    UnloadScope Scope,
    IReadOnlySet<string> ListedForUnload,
    IReadOnlySet<string> Skipped,
    IReadOnlySet<string> ExplicitUnloads);

/// <summary>
/// The single source of truth for desired and observed adapter state, engine info and engine load.
/// API calls write the desired set and return at once; the reconciler acts on it and records progress here;
/// watchers get a full snapshot whenever <see cref="Version"/> moves.
/// </summary>
internal sealed class AdapterStateStore
{
    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly SidecarMetrics _metrics;
    private readonly Dictionary<string, AdapterRecord> _records = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DesiredAdapter> _desired = new(StringComparer.Ordinal);
    private readonly HashSet<string> _explicitUnloads = new(StringComparer.Ordinal);
    private HashSet<string> _listedForUnload = new(StringComparer.Ordinal);
    private HashSet<string> _skipped = new(StringComparer.Ordinal);
    private UnloadScope _scope = UnloadScope.ExplicitOnly;
    private long _generation;
    private EngineInfo _info = new();
    private EngineLoad _load = new() { Healthy = false };
    private long _version;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Channel<bool> _trigger = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    public AdapterStateStore(TimeProvider time, SidecarMetrics metrics)
    {
        _time = time;
        _metrics = metrics;
    }

    public long Version { get { lock (_gate) return _version; } }

    /// <summary>Applies a declarative desired set. Invalid entries are recorded as Failed at once.</summary>
    public IReadOnlyList<AdapterStatus> SetDesired(IReadOnlyList<DesiredAdapter> adapters, long generation, UnloadScope scope,
        IEnumerable<string>? listedForUnload = null, IEnumerable<string>? skipped = null)
    {
        lock (_gate)
        {
            var names = adapters.Select(a => a.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var name in _desired.Keys.Where(n => !names.Contains(n)).ToList())
                RemoveDesiredLocked(name, explicitUnload: false);
            foreach (var a in adapters) UpsertLocked(a);
            _scope = scope;
            _listedForUnload = (listedForUnload ?? []).ToHashSet(StringComparer.Ordinal);
            _skipped = (skipped ?? []).ToHashSet(StringComparer.Ordinal);
            if (generation != 0) _generation = generation;
            ChangedLocked();
            RequestReconcile();
            return adapters.Select(a => _records[a.Name].ToProto()).ToList();
        }
    }

    /// <summary>Adds or replaces one desired adapter (the Load RPC).</summary>
    public AdapterStatus AddDesired(DesiredAdapter adapter)
    {
        lock (_gate)
        {
            UpsertLocked(adapter);
            ChangedLocked();
            RequestReconcile();
            return _records[adapter.Name].ToProto();
        }
    }

    /// <summary>Removes one adapter from the desired set and has it unloaded (the Unload RPC). True when it was known.</summary>
    public bool RemoveDesired(string name)
    {
        lock (_gate)
        {
            var known = _desired.ContainsKey(name) || _records.ContainsKey(name);
            RemoveDesiredLocked(name, explicitUnload: true);
            ChangedLocked();
            RequestReconcile();
            return known;
        }
    }

    private void UpsertLocked(DesiredAdapter adapter)
    {
        _explicitUnloads.Remove(adapter.Name);
        var isNew = !_records.TryGetValue(adapter.Name, out var record);
        record ??= new AdapterRecord(adapter.Name);
        var changed = record.Spec is null || record.Spec != adapter;
        _desired[adapter.Name] = adapter;
        if (!changed) return;
        record.Spec = adapter;
        record.Failures = 0;
        record.NextAttempt = DateTimeOffset.MinValue;
        var invalid = Validate(adapter);
        if (invalid is { } failure)
        {
            SetPhaseLocked(record, AdapterPhase.Failed, failure.Reason, failure.Message);
        }
        else if (isNew || record.Phase != AdapterPhase.Loaded || record.LoadedFingerprint != adapter.Fingerprint)
        {
            SetPhaseLocked(record, AdapterPhase.Pending, "", isNew ? "" : "The spec changed; a (re)load is pending.");
        }
        _records[adapter.Name] = record;
    }

    /// <summary>Checks that need no I/O: the name and the source's syntax and digest.</summary>
    internal static (string Reason, string Message)? Validate(DesiredAdapter adapter)
    {
        if (AdapterNames.Check(adapter.Name) is { } nameProblem) return (FailureReasons.InvalidName, nameProblem);
        try
        {
            AdapterSource.Parse(adapter.Source);
            ArtifactCache.NormalizeDigest(adapter.Sha256);
        }
        catch (ArtifactException e)
        {
            return (e.Reason, e.Message);
        }
        return null;
    }

    private void RemoveDesiredLocked(string name, bool explicitUnload)
    {
        _desired.Remove(name);
        if (explicitUnload) _explicitUnloads.Add(name);
        if (!_records.TryGetValue(name, out var record)) return;
        if (record.LoadedFingerprint is not null || record.Phase is AdapterPhase.Loaded or AdapterPhase.Loading or AdapterPhase.Unloading)
        {
            // It may be on the engine: keep reporting it until the reconciler has unloaded it.
            record.Spec = null;
            if (!explicitUnload) _explicitUnloads.Add(name);
            SetPhaseLocked(record, AdapterPhase.Unloading, "", "Not desired any more; unload pending.");
        }
        else
        {
            RemoveRecordLocked(record);
        }
    }

    private void RemoveRecordLocked(AdapterRecord record)
    {
        _records.Remove(record.Name);
        _metrics.AdapterState.RemoveLabelled(record.Name, PhaseLabel(record.Phase));
    }

    /// <summary>A copy of everything a reconcile pass decides from.</summary>
    public ReconcileInputs Inputs()
    {
        lock (_gate)
        {
            return new ReconcileInputs(
                new Dictionary<string, DesiredAdapter>(_desired, StringComparer.Ordinal),
                _records.ToDictionary(r => r.Key, r => r.Value.Clone(), StringComparer.Ordinal),
                _scope,
                _listedForUnload.ToHashSet(StringComparer.Ordinal),
                _skipped.ToHashSet(StringComparer.Ordinal),
                _explicitUnloads.ToHashSet(StringComparer.Ordinal));
        }
    }

    /// <summary>Mutates a record if it still exists and still has the spec the caller worked from.</summary>
    public bool Update(string name, DesiredAdapter? expectedSpec, Action<AdapterRecord> update)
    {
        lock (_gate)
        {
            if (!_records.TryGetValue(name, out var record) || record.Spec != expectedSpec) return false;
            var before = record.Phase;
            var reasonBefore = record.Reason;
            update(record);
            record.Updated = _time.GetUtcNow();
            if (before != record.Phase)
            {
                _metrics.AdapterState.RemoveLabelled(name, PhaseLabel(before));
                _metrics.AdapterState.WithLabels(name, PhaseLabel(record.Phase)).Set(1);
            }
            if (record.Phase == AdapterPhase.Failed && (before != AdapterPhase.Failed || reasonBefore != record.Reason))
                _metrics.Failure(record.Reason);
            ChangedLocked();
            return true;
        }
    }

    /// <summary>Records an engine adapter the sidecar must unload although it has no record of it (found on the engine).</summary>
    public void TrackUnloading(string name)
    {
        lock (_gate)
        {
            if (_records.ContainsKey(name)) return;
            var record = new AdapterRecord(name);
            SetPhaseLocked(record, AdapterPhase.Unloading, "", "On the engine but not desired; unload pending.");
            _records[name] = record;
            ChangedLocked();
        }
    }

    /// <summary>Forgets an unloaded adapter, unless it became desired again meanwhile.</summary>
    public void Unloaded(string name)
    {
        lock (_gate)
        {
            _explicitUnloads.Remove(name);
            if (_records.TryGetValue(name, out var record) && record.Spec is null) RemoveRecordLocked(record);
            ChangedLocked();
        }
    }

    public void SetInfo(Func<EngineInfo, EngineInfo> update)
    {
        lock (_gate)
        {
            var next = update(_info.Clone());
            if (next.Equals(_info)) return;
            _info = next;
            ChangedLocked();
        }
    }

    public EngineInfo Info { get { lock (_gate) return _info.Clone(); } }

    /// <summary>Records where the engine keeps each loaded adapter. <paramref name="residency"/> null means the engine
    /// does not say; an adapter missing from a non-null map is listed but evicted from host memory ("disk").</summary>
    public void SetResidency(IReadOnlyDictionary<string, string>? residency)
    {
        lock (_gate)
        {
            var changed = false;
            foreach (var record in _records.Values)
            {
                var next = residency is null || record.Phase != AdapterPhase.Loaded ? "" : residency.GetValueOrDefault(record.Name, "disk");
                if (next == record.Residency) continue;
                record.Residency = next;
                changed = true;
            }
            if (changed) ChangedLocked();
        }
    }

    /// <summary>Records the engine's load; publishes only when something other than the observation time changed.</summary>
    public void SetLoad(EngineLoad load)
    {
        lock (_gate)
        {
            var compareNext = load.Clone();
            compareNext.Observed = null;
            var comparePrev = _load.Clone();
            comparePrev.Observed = null;
            _load = load;
            if (!compareNext.Equals(comparePrev)) ChangedLocked();
        }
    }

    public EngineState Snapshot(out long version)
    {
        lock (_gate)
        {
            version = _version;
            var state = new EngineState { Info = _info.Clone(), Load = _load.Clone(), DesiredGeneration = _generation };
            state.Adapters.AddRange(_records.Values.OrderBy(r => r.Name, StringComparer.Ordinal).Select(r => r.ToProto()));
            return state;
        }
    }

    public IReadOnlyList<AdapterStatus> List()
    {
        lock (_gate) return _records.Values.OrderBy(r => r.Name, StringComparer.Ordinal).Select(r => r.ToProto()).ToList();
    }

    public long Generation { get { lock (_gate) return _generation; } }

    /// <summary>Completes when the version moves past <paramref name="version"/>.</summary>
    public Task WaitForChangeAsync(long version, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_version != version) return Task.CompletedTask;
            return _changed.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Asks the reconciler for a pass soon; many requests collapse into one.</summary>
    public void RequestReconcile() => _trigger.Writer.TryWrite(true);

    /// <summary>Waits for a reconcile request or the periodic interval, whichever comes first.</summary>
    public async Task WaitForReconcileRequestAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(interval);
        try
        {
            await _trigger.Reader.WaitToReadAsync(timeout.Token);
            _trigger.Reader.TryRead(out _);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
        }
    }

    private void SetPhaseLocked(AdapterRecord record, AdapterPhase phase, string reason, string message)
    {
        var before = record.Phase;
        record.Phase = phase;
        record.Reason = reason;
        record.Message = message;
        record.Updated = _time.GetUtcNow();
        if (before != phase) _metrics.AdapterState.RemoveLabelled(record.Name, PhaseLabel(before));
        _metrics.AdapterState.WithLabels(record.Name, PhaseLabel(phase)).Set(1);
        if (phase == AdapterPhase.Failed) _metrics.Failure(reason);
    }

    private void ChangedLocked()
    {
        _version++;
        var previous = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        previous.TrySetResult();
    }

    internal static string PhaseLabel(AdapterPhase phase) => phase switch
    {
        AdapterPhase.Pending => "pending",
        AdapterPhase.Downloading => "downloading",
        AdapterPhase.Loading => "loading",
        AdapterPhase.Loaded => "loaded",
        AdapterPhase.Failed => "failed",
        AdapterPhase.Unloading => "unloading",
        _ => "unspecified",
    };
}
