namespace HybridServing.MockEngine.Performance;

/// <summary>
/// Where each known adapter lives: <c>max_loras</c> GPU slots and a host-memory cache of
/// <c>max_cpu_loras</c>, both least-recently-used, pinned adapters never evicted, as vLLM's
/// LRUCacheWorkerLoRAManager does. Not thread-safe: the <see cref="EngineModel"/> owns it.
/// </summary>
internal sealed class AdapterResidency(int gpuSlots, int cpuSlots, PerformanceProfile profile)
{
    private readonly Dictionary<string, AdapterSpec> _registered = new(StringComparer.Ordinal);
    // Adapters unloaded while requests still use them: those requests still need their weights.
    private readonly Dictionary<string, AdapterSpec> _retired = new(StringComparer.Ordinal);
    private readonly HashSet<string> _ghostOnRelease = new(StringComparer.Ordinal);
    // Least recently used first.
    private readonly LinkedList<string> _gpu = new();
    private readonly LinkedList<string> _cpu = new();

    /// <summary>Slots still held by adapters whose unload did not free them (the vLLM defect, when enabled).</summary>
    public int GhostSlots { get; private set; }

    public int GpuSlots => gpuSlots;
    public int CpuSlots => cpuSlots;
    public IReadOnlyCollection<string> Registered => _registered.Keys;
    public IEnumerable<string> GpuLruOrder => _gpu;
    public IEnumerable<string> CpuLruOrder => _cpu;
    public bool IsOnGpu(string name) => _gpu.Contains(name);
    public bool IsInHost(string name) => _cpu.Contains(name);
    public bool IsRegistered(string name) => _registered.ContainsKey(name);

    public AdapterSpec? Spec(string name) =>
        _registered.TryGetValue(name, out var s) ? s : _retired.GetValueOrDefault(name);

    /// <summary>
    /// Registers (or replaces, for load_inplace) an adapter and brings it into host memory,
    /// evicting the least recently used one if the cache is full. Returns the load it cost.
    /// </summary>
    public AdapterLoadRecord Register(AdapterSpec spec, DateTimeOffset now)
    {
        var replacing = _registered.ContainsKey(spec.Name);
        _registered[spec.Name] = spec;
        _retired.Remove(spec.Name);
        if (replacing)
        {
            // New weights under the old name: the GPU copy is stale.
            _gpu.Remove(spec.Name);
            _cpu.Remove(spec.Name);
        }
        var tier = spec.Source == AdapterSource.Remote ? LoadTier.Remote : LoadTier.LocalDisk;
        var seconds = SourceCost(spec).SecondsFor(spec.SizeBytes);
        InsertIntoHost(spec.Name, protectedNames: null);
        return new AdapterLoadRecord(spec.Name, tier, seconds, now);
    }

    /// <summary>Forgets an adapter. With <paramref name="keepSlot"/> its GPU slot stays taken (the defect).</summary>
    public bool Unregister(string name, bool keepSlot, bool stillInUse)
    {
        if (!_registered.Remove(name, out var spec)) return false;
        if (stillInUse)
        {
            // Requests already queued for it keep their weights until they finish; only then is it dropped.
            _retired[name] = spec;
            if (keepSlot) _ghostOnRelease.Add(name);
            return true;
        }
        _cpu.Remove(name);
        if (_gpu.Remove(name) && keepSlot) GhostSlots++;
        return true;
    }

    /// <summary>Drops a retired adapter's weights once no request needs them.</summary>
    public void ForgetRetired(string name)
    {
        if (!_retired.Remove(name)) return;
        _cpu.Remove(name);
        var ghost = _ghostOnRelease.Remove(name);
        if (_gpu.Remove(name) && ghost) GhostSlots++;
    }

    /// <summary>
    /// Can a batch already holding <paramref name="active"/> take one more distinct adapter?
    /// It needs a slot that is free or held by an adapter that is neither in the batch nor pinned.
    /// </summary>
    public bool CanAdmit(string adapter, IReadOnlySet<string> active)
    {
        if (active.Contains(adapter)) return true;
        if (active.Count >= gpuSlots - GhostSlots) return false;
        if (_gpu.Contains(adapter)) return true;
        var taken = GhostSlots + active.Count + _gpu.Count(g => !active.Contains(g) && Spec(g)?.Pinned == true);
        return taken < gpuSlots;
    }

    /// <summary>
    /// Makes <paramref name="name"/> resident on the GPU for a step whose batch uses
    /// <paramref name="batch"/>. Returns the load it cost, or null if it was already there.
    /// </summary>
    public AdapterLoadRecord? EnsureOnGpu(string name, IReadOnlySet<string> batch, DateTimeOffset now)
    {
        var spec = Spec(name) ?? throw new InvalidOperationException($"Adapter '{name}' is not known to the engine.");
        if (_gpu.Remove(name))
        {
            _gpu.AddLast(name);
            Touch(_cpu, name);
            return null;
        }

        double seconds;
        LoadTier tier;
        if (_cpu.Contains(name))
        {
            tier = LoadTier.HostToGpu;
            seconds = profile.HostToGpu.SecondsFor(spec.SizeBytes);
            Touch(_cpu, name);
        }
        else
        {
            // Evicted from host memory earlier: read it again from where it came from, then copy it up.
            tier = spec.Source == AdapterSource.Remote ? LoadTier.Remote : LoadTier.LocalDisk;
            seconds = SourceCost(spec).SecondsFor(spec.SizeBytes) + profile.HostToGpu.SecondsFor(spec.SizeBytes);
            InsertIntoHost(name, batch);
        }

        while (_gpu.Count + GhostSlots >= gpuSlots)
        {
            var victim = _gpu.FirstOrDefault(g => !batch.Contains(g) && Spec(g)?.Pinned != true);
            // Admission keeps the batch within the slots, so this only happens if slots were pinned
            // after admission; over-committing one step beats stopping the engine loop.
            if (victim is null) break;
            _gpu.Remove(victim);
        }
        _gpu.AddLast(name);
        return new AdapterLoadRecord(name, tier, seconds, now);
    }

    private void InsertIntoHost(string name, IReadOnlySet<string>? protectedNames)
    {
        _cpu.Remove(name);
        while (_cpu.Count >= cpuSlots)
        {
            var victim = _cpu.FirstOrDefault(c => Spec(c)?.Pinned != true && protectedNames?.Contains(c) != true);
            if (victim is null) break; // everything pinned: vLLM would refuse pinning beyond capacity, so this cannot grow far.
            _cpu.Remove(victim);
            // An adapter leaving host memory also leaves the GPU (vLLM deactivates it first).
            _gpu.Remove(victim);
        }
        _cpu.AddLast(name);
    }

    private TransferCost SourceCost(AdapterSpec spec) =>
        spec.Source == AdapterSource.Remote ? profile.RemoteToHost : profile.LocalDiskToHost;

    private static void Touch(LinkedList<string> list, string name)
    {
        if (list.Remove(name)) list.AddLast(name);
    }
}
