using HybridServing.MockEngine.Performance;

namespace HybridServing.MockEngine.Sleep;

/// <summary>What <c>vllm:engine_sleep_state</c> reports: awake, level 1 (weights offloaded) or level 2 (all discarded).</summary>
public enum SleepLevel
{
    Awake = 0,
    WeightsOffloaded = 1,
    DiscardAll = 2,
}

/// <summary>
/// vLLM's sleep mode (<c>--enable-sleep-mode</c>) as a state machine over the two memory tags vLLM's
/// allocator keeps, <c>weights</c> and <c>kv_cache</c>. Sleeping discards the KV cache and (level 1)
/// offloads the weights to host memory or (level 2) discards them; waking a tag charges its modelled
/// time. Like vLLM's executor, a second sleep while asleep and waking a tag that is awake do nothing.
/// </summary>
public sealed class EngineSleepState(PerformanceProfile profile)
{
    /// <summary>The tags vLLM's CuMemAllocator tags memory with.</summary>
    public const string WeightsTag = "weights";
    public const string KvCacheTag = "kv_cache";
    public static readonly IReadOnlyList<string> Tags = [WeightsTag, KvCacheTag];

    private readonly Lock _lock = new();
    private readonly HashSet<string> _sleepingTags = new(StringComparer.Ordinal);
    private SleepLevel _level;
    private int _inFlight;

    /// <summary>True from the moment a sleep is asked for until every tag is awake again.</summary>
    public bool IsSleeping { get { lock (_lock) return _sleepingTags.Count > 0; } }

    public SleepLevel Level { get { lock (_lock) return _level; } }

    /// <summary>Requests admitted to a model route and not finished yet.</summary>
    public int InFlight { get { lock (_lock) return _inFlight; } }

    /// <summary>Admits a request to a model route; false (refuse it) while the engine sleeps.</summary>
    public bool TryEnter()
    {
        lock (_lock)
        {
            if (_sleepingTags.Count > 0) return false;
            _inFlight++;
            return true;
        }
    }

    public void Exit()
    {
        lock (_lock) _inFlight--;
    }

    /// <summary>Puts both tags to sleep; false when already asleep (vLLM logs a warning and returns).</summary>
    public bool Sleep(SleepLevel level)
    {
        if (level is not (SleepLevel.WeightsOffloaded or SleepLevel.DiscardAll))
            throw new ArgumentOutOfRangeException(nameof(level), level, "Sleep level must be 1 or 2.");
        lock (_lock)
        {
            if (_sleepingTags.Count > 0) return false;
            _sleepingTags.UnionWith(Tags);
            _level = level;
            return true;
        }
    }

    /// <summary>
    /// The modelled seconds to wake <paramref name="tags"/> (all sleeping tags when empty), or zero
    /// when none of them sleeps. Level 1 copies the weights host → GPU; level 2 reads them from
    /// local disk first. The KV cache is only re-allocated, which costs nothing we model.
    /// </summary>
    public double WakeCostSeconds(IReadOnlyCollection<string> tags)
    {
        lock (_lock)
        {
            var waking = tags.Count == 0 ? _sleepingTags : _sleepingTags.Intersect(tags, StringComparer.Ordinal);
            if (!waking.Contains(WeightsTag)) return 0;
            var toGpu = profile.HostToGpu.SecondsFor(profile.WeightBytes);
            return _level == SleepLevel.DiscardAll ? profile.LocalDiskToHost.SecondsFor(profile.WeightBytes) + toGpu : toGpu;
        }
    }

    /// <summary>Marks <paramref name="tags"/> (all when empty) awake; the engine is awake when no tag sleeps.</summary>
    public void Wake(IReadOnlyCollection<string> tags)
    {
        lock (_lock)
        {
            if (tags.Count == 0) _sleepingTags.Clear();
            else _sleepingTags.ExceptWith(tags);
            if (_sleepingTags.Count == 0) _level = SleepLevel.Awake;
        }
    }
}
