using HybridServing.Contracts.Resources;

namespace HybridServing.ControlPlane.Placement;

/// <summary>
/// Capacity-aware adapter placement: a pure, deterministic function of its inputs (no clock, no I/O,
/// no randomness). Demands are served in priority order (then name), in three passes:
/// <list type="number">
/// <item>keep: existing placements that are still valid stay (minimal churn), up to each adapter's maximum;</item>
/// <item>minimum: every adapter is brought up to its minimum replicas, on free slots first, then by
///   reclaiming another adapter's extra replica (above its own minimum, priority not higher), then —
///   only with preemptionPolicy LowerPriority — by evicting a lower-priority adapter; then adapters with an
///   observed request rate are brought up to the replicas it asks for (<see cref="PlacementOptions.EffectiveMinimum"/>)
///   on free slots or by reclaiming, never by preemption;</item>
/// <item>maximum: remaining free slots give adapters replicas up to their maximum: an equal share each, then one per adapter per round (busiest first).</item>
/// </list>
/// The minimum and maximum passes repeat until nothing moves, so that solving a solved plan again
/// changes nothing (the plan is a fixed point). Among equal candidates an engine on a node that does
/// not hold the adapter yet wins (spread), then the engine with the most free slots, then the name.
/// <para>
/// There is one algorithm and no state between calls; "one change to a solved cluster" is a full
/// solve made cheap: its cost is linear in demands plus current placements (no per-demand walk over
/// engines, no string sorting of an input that arrives sorted, free-engine sets built only for the
/// classes that look for a free engine), so the reconciler can call it on every pass.
/// </para>
/// </summary>
internal static class PlacementSolver
{
    private const int MaxPasses = 4;

    public static Plan Solve(ClusterSnapshot cluster, IReadOnlyList<AdapterDemand> demands, PlacementOptions options)
    {
        var state = new State(cluster, demands, options);
        state.Keep();
        for (var pass = 0; pass < MaxPasses; pass++)
        {
            var changed = state.MinimumPass();
            changed |= state.MaximumPass();
            if (!changed) break;
        }
        return state.ToPlan();
    }

    /// <summary>
    /// Demands with the same base model, selector, rank (and memory, where budgets exist) share one
    /// eligibility class: one array of eligible engines and one set of those engines that still have
    /// free slots, ordered by most free slots then name. Finding the best engine is then a walk from
    /// the front of that set rather than a scan of every engine.
    /// </summary>
    private sealed class EligibilityClass(int[] engines)
    {
        public readonly int[] Engines = engines;

        /// <summary>
        /// Built on first use and kept current from then on: on a solved cluster most classes are never
        /// asked for a free engine, and filling every class's set up front costs more than the whole
        /// incremental solve may take.
        /// </summary>
        public SortedSet<long>? Free;
    }

    /// <summary>What every demand with one base model and selector shares.</summary>
    private readonly record struct BaseMatch(int Id, int[] Engines, bool RankMatters, bool MemoryMatters, bool StorageMatters);

    private sealed class State
    {
        private readonly EngineSnapshot[] _engines;
        private readonly int[] _node;
        private readonly int[] _slotsFree;
        private readonly long[] _memFree;
        private readonly long[] _storageFree;
        private readonly List<int>[] _held;
        private readonly AdapterDemand[] _demands;
        private readonly int[] _order;
        private readonly int[] _byName;
        private readonly int[] _nameRank;
        private readonly int[][] _baseMatch;
        private readonly EligibilityClass[] _class;
        private readonly int[][] _eligible;
        private readonly List<EligibilityClass>[] _engineClasses;
        private readonly List<int>[] _holders;
        private readonly string?[] _preemptedBy;
        private readonly List<Preemption> _preemptions = [];
        private readonly PlacementOptions _options;

        public State(ClusterSnapshot cluster, IReadOnlyList<AdapterDemand> demands, PlacementOptions options)
        {
            _options = options;
            _engines = [.. cluster.Engines.OrderBy(e => e.Name, StringComparer.Ordinal)];
            var nodes = new Dictionary<string, int>(StringComparer.Ordinal);
            _node = [.. _engines.Select(e => nodes.TryGetValue(e.Node, out var id) ? id : nodes[e.Node] = nodes.Count)];
            _slotsFree = [.. _engines.Select(e => e.Slots)];
            _memFree = [.. _engines.Select(e => e.AdapterMemoryBudgetBytes > 0 ? e.AdapterMemoryBudgetBytes : long.MaxValue)];
            _storageFree = [.. _engines.Select(e => e.StorageBudgetBytes > 0 ? e.StorageBudgetBytes : long.MaxValue)];
            _held = [.. _engines.Select(_ => new List<int>())];
            _engineClasses = [.. _engines.Select(_ => new List<EligibilityClass>())];

            _demands = [.. demands];
            var byName = new Dictionary<string, int>(_demands.Length, StringComparer.Ordinal);
            for (var i = 0; i < _demands.Length; i++)
                if (!byName.TryAdd(_demands[i].Name, i))
                    throw new ArgumentException($"Two demands are named '{_demands[i].Name}'; adapter names must be unique.", nameof(demands));
            _byName = NameOrder(_demands);
            _nameRank = new int[_demands.Length];
            for (var r = 0; r < _byName.Length; r++) _nameRank[_byName[r]] = r;
            _order = PriorityOrder(_demands, _byName);
            _holders = [.. _demands.Select(_ => new List<int>(2))];
            _preemptedBy = new string?[_demands.Length];
            _min = new int[_demands.Length];
            for (var d = 0; d < _demands.Length; d++) _min[d] = options.EffectiveMinimum(_demands[d]);

            // Compatibility is computed once per distinct (base model, selector[, rank][, memory]) and shared:
            // per demand this is two dictionary look-ups, never a walk over the engines.
            var baseCache = new Dictionary<(string BaseModel, string Selector), BaseMatch>();
            // Demands built from one declaration share their base-model string and selector object: a
            // look-up by reference skips hashing the texts for all but the first of them.
            var sameObjects = new Dictionary<(string BaseModel, EngineSelector Selector), BaseMatch>(SameObjects.Instance);
            var modelEngines = new Dictionary<string, List<int>>(StringComparer.Ordinal);
            for (var e = 0; e < _engines.Length; e++)
                foreach (var model in _engines[e].BaseModels)
                    if (!modelEngines.TryGetValue(model, out var list)) modelEngines[model] = [e];
                    else if (list[^1] != e) list.Add(e);
            var classCache = new Dictionary<(int Base, int Rank, long Memory, long Storage), EligibilityClass>();
            _baseMatch = new int[_demands.Length][];
            _class = new EligibilityClass[_demands.Length];
            _eligible = new int[_demands.Length][];
            for (var d = 0; d < _demands.Length; d++)
            {
                var demand = _demands[d];
                if (!sameObjects.TryGetValue((demand.BaseModel, demand.Selector), out var bm))
                {
                    if (!baseCache.TryGetValue((demand.BaseModel, demand.Selector.Key), out bm))
                    {
                        int[] engines = modelEngines.TryGetValue(demand.BaseModel, out var serving)
                            ? [.. serving.Where(e => demand.Selector.Matches(_engines[e].Labels))]
                            : [];
                        baseCache[(demand.BaseModel, demand.Selector.Key)] = bm = new BaseMatch(baseCache.Count, engines,
                            engines.Any(e => _engines[e].MaxLoraRank > 0), engines.Any(e => _engines[e].AdapterMemoryBudgetBytes > 0),
                            engines.Any(e => _engines[e].StorageBudgetBytes > 0));
                    }
                    sameObjects[(demand.BaseModel, demand.Selector)] = bm;
                }
                var match = bm.Engines;
                _baseMatch[d] = match;
                var classKey = (bm.Id, bm.RankMatters ? demand.Rank : 0, bm.MemoryMatters ? demand.MemoryBytes : 0, bm.StorageMatters ? demand.StorageBytes : 0);
                if (!classCache.TryGetValue(classKey, out var cls))
                {
                    classCache[classKey] = cls = new EligibilityClass([.. match.Where(e => Fits(_engines[e], demand))]);
                    foreach (var e in cls.Engines) _engineClasses[e].Add(cls);
                }
                _class[d] = cls;
                _eligible[d] = demand.ExcludedEngines is { Count: > 0 } excluded
                    ? [.. cls.Engines.Where(e => !excluded.Contains(_engines[e].Name))]
                    : cls.Engines;
            }

            // Current residency, mapped to demand indices (adapters no longer demanded are dropped): demand
            // d's current engines are _current[_currentStart[d] .. _currentStart[d + 1]), in engine order
            // (flat arrays rather than one list per demand: this runs on every solve of a full cluster).
            var total = 0;
            foreach (var engine in _engines) total += engine.Current.Count;
            var currentDemand = new int[total];
            var currentEngine = new int[total];
            _currentStart = new int[_demands.Length + 1];
            var k = 0;
            for (var e = 0; e < _engines.Length; e++)
                foreach (var name in _engines[e].Current)
                    if (byName.TryGetValue(name, out var d))
                    {
                        currentDemand[k] = d;
                        currentEngine[k++] = e;
                        _currentStart[d + 1]++;
                    }
            for (var d = 0; d < _demands.Length; d++) _currentStart[d + 1] += _currentStart[d];
            _current = new int[k];
            var next = _currentStart[..^1];
            for (var i = 0; i < k; i++) _current[next[currentDemand[i]]++] = currentEngine[i];
        }

        private readonly int[] _currentStart;
        private readonly int[] _current;

        /// <summary>Reference equality on both parts of the key.</summary>
        private sealed class SameObjects : IEqualityComparer<(string, EngineSelector)>
        {
            public static readonly SameObjects Instance = new();
            public bool Equals((string, EngineSelector) x, (string, EngineSelector) y) => ReferenceEquals(x.Item1, y.Item1) && ReferenceEquals(x.Item2, y.Item2);
            public int GetHashCode((string, EngineSelector) obj) =>
                HashCode.Combine(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(obj.Item1), System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(obj.Item2));
        }

        /// <summary>
        /// Demand indices in ordinal name order. The demands of a solved cluster usually arrive in the
        /// order they came last time plus a few appended, so the sorted prefix is kept and only the rest
        /// is sorted and merged in: O(n) instead of O(n log n) string comparisons for one change.
        /// </summary>
        private static int[] NameOrder(AdapterDemand[] demands)
        {
            var n = demands.Length;
            var order = new int[n];
            for (var i = 0; i < n; i++) order[i] = i;
            var prefix = 1;
            while (prefix < n && string.CompareOrdinal(demands[prefix - 1].Name, demands[prefix].Name) < 0) prefix++;
            if (prefix >= n) return order;
            var tail = order[prefix..];
            var tailNames = new string[tail.Length];
            for (var i = 0; i < tail.Length; i++) tailNames[i] = demands[tail[i]].Name;
            Array.Sort(tailNames, tail, StringComparer.Ordinal);
            int a = 0, b = 0, k = 0;
            while (a < prefix && b < tail.Length)
                order[k++] = string.CompareOrdinal(demands[a].Name, demands[tail[b]].Name) < 0 ? a++ : tail[b++];
            while (a < prefix) order[k++] = a++;
            while (b < tail.Length) order[k++] = tail[b++];
            return order;
        }

        /// <summary>Serving order: priority descending, then name (ordinal); names are unique, so the order is total.</summary>
        private static int[] PriorityOrder(AdapterDemand[] demands, int[] byName)
        {
            var keys = new ulong[byName.Length];
            for (var k = 0; k < byName.Length; k++)
            {
                // High half: priority mapped so that ascending keys are descending priorities; low half: name rank.
                var ascending = (uint)(demands[byName[k]].Priority ^ int.MinValue);
                keys[k] = ((ulong)(uint.MaxValue - ascending) << 32) | (uint)k;
            }
            Array.Sort(keys);
            var order = new int[keys.Length];
            for (var k = 0; k < keys.Length; k++) order[k] = byName[(int)(keys[k] & 0xFFFFFFFF)];
            return order;
        }

        // Ascending order = most free slots first, then lowest engine index (name order).
        private long FreeKey(int e) => ((long)(int.MaxValue - _slotsFree[e]) << 32) | (uint)e;

        /// <summary>The class's engines with free slots, most free first (built on first use, see <see cref="EligibilityClass.Free"/>).</summary>
        private SortedSet<long> FreeSet(EligibilityClass cls)
        {
            if (cls.Free is { } free) return free;
            var keys = new List<long>(cls.Engines.Length);
            foreach (var e in cls.Engines)
                if (_slotsFree[e] > 0) keys.Add(FreeKey(e));
            _freeSetsBuilt++;
            return cls.Free = new SortedSet<long>(keys);
        }

        private int _freeSetsBuilt;

        private void SetSlotsFree(int e, int value)
        {
            if (_freeSetsBuilt == 0)
            {
                _slotsFree[e] = value;
                return;
            }
            var had = _slotsFree[e] > 0;
            var oldKey = FreeKey(e);
            _slotsFree[e] = value;
            var newKey = FreeKey(e);
            foreach (var cls in _engineClasses[e])
            {
                if (cls.Free is not { } free) continue;
                if (had) free.Remove(oldKey);
                if (value > 0) free.Add(newKey);
            }
        }

        private static bool Fits(EngineSnapshot engine, AdapterDemand demand) =>
            (engine.MaxLoraRank <= 0 || demand.Rank <= engine.MaxLoraRank)
            && (engine.AdapterMemoryBudgetBytes <= 0 || demand.MemoryBytes <= engine.AdapterMemoryBudgetBytes)
            && (engine.StorageBudgetBytes <= 0 || demand.StorageBytes <= engine.StorageBudgetBytes)
            && engine.Slots > 0;

        private bool Holds(int e, int d) => _holders[d].Contains(e);
        private bool IsEligible(int d, int e) => Array.BinarySearch(_eligible[d], e) >= 0;
        private bool HasRoom(int e, int d) => _slotsFree[e] > 0 && Fits(e, d);

        /// <summary>Memory and storage left on <paramref name="e"/> take <paramref name="d"/> (slots aside).</summary>
        private bool Fits(int e, int d) => _memFree[e] >= _demands[d].MemoryBytes && _storageFree[e] >= _demands[d].StorageBytes;

        private void Assign(int e, int d)
        {
            _held[e].Add(d);
            _holders[d].Add(e);
            SetSlotsFree(e, _slotsFree[e] - 1);
            _memFree[e] -= _demands[d].MemoryBytes;
            _storageFree[e] -= _demands[d].StorageBytes;
        }

        private void Remove(int e, int d)
        {
            _held[e].Remove(d);
            _holders[d].Remove(e);
            SetSlotsFree(e, _slotsFree[e] + 1);
            _memFree[e] += _demands[d].MemoryBytes;
            _storageFree[e] += _demands[d].StorageBytes;
        }

        // What the minimum pass brings d up to (raised by its observed rate), and what reclaiming treats as
        // its own: a hot adapter's extra replicas are not "extra" while its rate needs them.
        private readonly int[] _min;

        private int Min(int d) => _min[d];

        // Shortfalls are only ever reported below the declared minimum: a hot adapter that cannot get the
        // replicas its rate asks for is served, just less spread.
        private int DeclaredMin(int d) => Math.Min(_demands[d].MinReplicas, _demands[d].MaxReplicas);

        public void Keep()
        {
            foreach (var d in _order)
                for (var i = _currentStart[d]; i < _currentStart[d + 1]; i++)
                {
                    var e = _current[i];
                    if (_holders[d].Count < _demands[d].MaxReplicas && IsEligible(d, e) && !Holds(e, d) && HasRoom(e, d))
                        Assign(e, d);
                }
        }

        /// <summary>
        /// Declared minimums first, for every adapter; only then the replicas observed rates ask for, which
        /// take free slots or reclaim extras but never preempt: a busy adapter must not keep a quiet one
        /// from its declared minimum.
        /// </summary>
        public bool MinimumPass()
        {
            var changed = false;
            foreach (var d in _order)
                while (_holders[d].Count < DeclaredMin(d))
                {
                    if (!(TryFree(d) || TryTake(d, reclaimOnly: true, forRate: false) || _demands[d].CanPreempt && TryTake(d, reclaimOnly: false, forRate: false))) break;
                    changed = true;
                }
            foreach (var d in _order)
                while (_holders[d].Count < Min(d))
                {
                    if (!(TryFree(d) || TryTake(d, reclaimOnly: true, forRate: true))) break;
                    changed = true;
                }
            return changed;
        }

        /// <summary>
        /// Free slots left after the minimums go out in two sweeps. First every adapter below its maximum
        /// gets an equal share of them, in serving order (priority, then name): consecutive adapters take
        /// the same engines (most free first), so engines end up in groups holding the same adapters, and
        /// the gateway can pool those engines' GPU slots for them (in the cluster simulator this layout
        /// served ~20 % more than scattering the same replica counts). Then what is left goes one replica
        /// per adapter per round, busiest first. Either way spare capacity is spread rather than filling the
        /// first adapters by name up to their maximum, and nothing is ever taken from anyone.
        /// </summary>
        public bool MaximumPass()
        {
            var active = new List<int>();
            long free = 0;
            foreach (var d in _order)
                if (_holders[d].Count < _demands[d].MaxReplicas) active.Add(d);
            if (active.Count == 0) return false;
            foreach (var f in _slotsFree) free += f;
            var changed = false;
            var share = (int)Math.Min(int.MaxValue, free / active.Count);
            if (share > 0)
                foreach (var d in active)
                {
                    var cap = (int)Math.Min(_demands[d].MaxReplicas, (long)_holders[d].Count + share);
                    while (_holders[d].Count < cap && TryFree(d)) changed = true;
                }
            active.RemoveAll(d => _holders[d].Count >= _demands[d].MaxReplicas);
            active.Sort((a, b) =>
            {
                var byPriority = _demands[b].Priority.CompareTo(_demands[a].Priority);
                if (byPriority != 0) return byPriority;
                var byRate = _demands[b].RequestRate.CompareTo(_demands[a].RequestRate);
                return byRate != 0 ? byRate : _nameRank[a].CompareTo(_nameRank[b]);
            });
            while (active.Count > 0)
            {
                var next = 0;
                for (var i = 0; i < active.Count; i++)
                {
                    var d = active[i];
                    // No free eligible engine now means none for the rest of this pass: slots only fill up.
                    if (!TryFree(d)) continue;
                    changed = true;
                    if (_holders[d].Count < _demands[d].MaxReplicas) active[next++] = d;
                }
                active.RemoveRange(next, active.Count - next);
            }
            return changed;
        }

        /// <summary>Is engine <paramref name="e"/> on a node the adapter is not on yet?</summary>
        private bool NewNode(int d, int e)
        {
            if (!_options.SpreadAcrossNodes) return false;
            foreach (var h in _holders[d]) if (_node[h] == _node[e]) return false;
            return true;
        }

        private bool TryFree(int d)
        {
            var best = -1;
            var bestNew = false;
            if (ReferenceEquals(_eligible[d], _class[d].Engines))
            {
                // Walk engines with free slots, most free first: the first one on a new node is the answer.
                foreach (var key in FreeSet(_class[d]))
                {
                    var e = (int)(key & 0xFFFFFFFF);
                    if (!Fits(e, d) || Holds(e, d)) continue;
                    if (NewNode(d, e)) { best = e; bestNew = true; break; }
                    if (best < 0) best = e;
                }
            }
            else
            {
                foreach (var e in _eligible[d])
                {
                    if (!HasRoom(e, d) || Holds(e, d)) continue;
                    var isNew = NewNode(d, e);
                    if (best < 0 || isNew && !bestNew || isNew == bestNew && _slotsFree[e] > _slotsFree[best])
                    {
                        best = e;
                        bestNew = isNew;
                    }
                }
            }
            if (best < 0) return false;
            Assign(best, d);
            return true;
        }

        /// <summary>
        /// Frees a slot for <paramref name="d"/> by taking it from another adapter: an extra replica
        /// (above that adapter's minimum, priority not higher than d's) when <paramref name="reclaimOnly"/>,
        /// else any replica of a strictly lower-priority adapter (preemption).
        /// </summary>
        /// <param name="forRate">Taking for a rate-derived replica: only replicas above the victim's own rate-derived
        /// minimum count as extra. For a declared minimum, anything above the victim's declared minimum does.</param>
        private bool TryTake(int d, bool reclaimOnly, bool forRate)
        {
            var priority = _demands[d].Priority;
            int bestE = -1, bestX = -1;
            foreach (var e in _eligible[d])
            {
                if (Holds(e, d)) continue;
                foreach (var x in _held[e])
                {
                    var px = _demands[x].Priority;
                    var extra = _holders[x].Count > (forRate ? Min(x) : DeclaredMin(x));
                    if (reclaimOnly ? !(extra && px <= priority) : px >= priority) continue;
                    if (_slotsFree[e] + 1 <= 0 || _memFree[e] + _demands[x].MemoryBytes < _demands[d].MemoryBytes
                        || _storageFree[e] + _demands[x].StorageBytes < _demands[d].StorageBytes) continue;
                    if (bestX < 0 || Better(d, e, x, bestE, bestX)) { bestE = e; bestX = x; }
                }
            }
            if (bestX < 0) return false;
            Remove(bestE, bestX);
            Assign(bestE, d);
            if (!reclaimOnly)
            {
                _preemptedBy[bestX] = _demands[d].Name;
                _preemptions.Add(new Preemption(_demands[bestX].Name, _engines[bestE].Name, _demands[d].Name));
            }
            return true;
        }

        // Victim order: lowest priority, then most replicas above its minimum, then spread for d, then names.
        private bool Better(int d, int e, int x, int bestE, int bestX)
        {
            var c = _demands[x].Priority.CompareTo(_demands[bestX].Priority);
            if (c != 0) return c < 0;
            c = (_holders[x].Count - Min(x)).CompareTo(_holders[bestX].Count - Min(bestX));
            if (c != 0) return c > 0;
            var n = NewNode(d, e).CompareTo(NewNode(d, bestE));
            if (n != 0) return n > 0;
            if (e != bestE) return e < bestE;
            return string.CompareOrdinal(_demands[x].Name, _demands[bestX].Name) < 0;
        }

        public Plan ToPlan()
        {
            // Names come out in ordinal order by sorting indices, not strings: engines are indexed in name
            // order, and _nameRank is each demand's place in name order.
            var buffer = new int[64];
            static Span<int> Scratch(ref int[] buffer, int length)
            {
                if (buffer.Length < length) buffer = new int[length];
                return buffer.AsSpan(0, length);
            }
            var engineAdapters = new Dictionary<string, IReadOnlyList<string>>(_engines.Length, StringComparer.Ordinal);
            for (var e = 0; e < _engines.Length; e++)
            {
                var held = _held[e];
                var ranks = Scratch(ref buffer, held.Count);
                for (var i = 0; i < ranks.Length; i++) ranks[i] = _nameRank[held[i]];
                ranks.Sort();
                var names = new string[ranks.Length];
                for (var i = 0; i < ranks.Length; i++) names[i] = _demands[_byName[ranks[i]]].Name;
                engineAdapters[_engines[e].Name] = names;
            }
            var adapterEngines = new Dictionary<string, IReadOnlyList<string>>(_demands.Length, StringComparer.Ordinal);
            var shortfalls = new Dictionary<string, Shortfall>(StringComparer.Ordinal);
            for (var d = 0; d < _demands.Length; d++)
            {
                var holders = Scratch(ref buffer, _holders[d].Count);
                _holders[d].CopyTo(holders);
                holders.Sort();
                var names = new string[holders.Length];
                for (var i = 0; i < holders.Length; i++) names[i] = _engines[holders[i]].Name;
                adapterEngines[_demands[d].Name] = names;
                if (_holders[d].Count < DeclaredMin(d)) shortfalls[_demands[d].Name] = Explain(d);
            }
            return new Plan(engineAdapters, adapterEngines, shortfalls, _preemptions);
        }

        private Shortfall Explain(int d)
        {
            var demand = _demands[d];
            var placed = _holders[d].Count;
            if (_baseMatch[d].Length == 0)
            {
                var serving = _engines.Count(e => e.BaseModels.Contains(demand.BaseModel, StringComparer.Ordinal));
                return new(LoraAdapterReasons.NoCompatibleEngine, serving == 0
                    ? $"no engine serves base model '{demand.BaseModel}' ({_engines.Length} engine(s) known)."
                    : $"{serving} engine(s) serve base model '{demand.BaseModel}' but none matches the pod selector.");
            }
            if (_class[d].Engines.Length == 0)
            {
                var candidates = _baseMatch[d].Select(e => _engines[e]).ToArray();
                if (candidates.All(e => e.MaxLoraRank > 0 && demand.Rank > e.MaxLoraRank))
                    return new(LoraAdapterReasons.AdapterIncompatible,
                        $"rank {demand.Rank} exceeds max_lora_rank of every compatible engine (largest: {candidates.Max(e => e.MaxLoraRank)}).");
                if (candidates.All(e => e.Slots <= 0))
                    return new(LoraAdapterReasons.AdapterIncompatible, "no compatible engine has LoRA slots (max_loras is 0).");
                if (candidates.All(e => e.StorageBudgetBytes > 0 && demand.StorageBytes > e.StorageBudgetBytes))
                    return new(LoraAdapterReasons.AdapterIncompatible,
                        $"its files take {demand.StorageBytes} bytes; the largest adapter cache among compatible engines is {candidates.Max(e => e.StorageBudgetBytes)} bytes (Sidecar:CacheBudgetBytes).");
                return new(LoraAdapterReasons.AdapterIncompatible,
                    $"needs {demand.MemoryBytes} bytes of adapter memory; the largest budget among compatible engines is {candidates.Max(e => e.AdapterMemoryBudgetBytes)} bytes.");
            }
            if (_eligible[d].Length == 0)
                return new(LoraAdapterReasons.LoadFailed, $"loading failed on every compatible engine ({_class[d].Engines.Length}); backing off before retrying.");
            if (_preemptedBy[d] is { } by)
                return new(LoraAdapterReasons.Preempted, $"preempted by higher-priority adapter '{by}'; placed on {placed} of at least {DeclaredMin(d)} engine(s).");
            return new(LoraAdapterReasons.InsufficientCapacity,
                $"placed on {placed} of at least {DeclaredMin(d)} engine(s): the {_eligible[d].Length} compatible engine(s) have no free slot"
                + (demand.CanPreempt ? " and hold nothing of lower priority." : " (preemptionPolicy None)."));
        }
    }
}
