using System.Collections.Concurrent;
using HybridServing.MockEngine.Lora;
using HybridServing.MockEngine.Performance;

namespace HybridServing.MockEngine;

/// <summary>What the engine holds and did, resident and served, as a snapshot.</summary>
public sealed record MockEngineState(
    IReadOnlyList<string> LoadedAdapters,
    IReadOnlyList<string> GpuAdapters,
    IReadOnlyList<string> HostAdapters,
    int Running,
    int Waiting,
    double KvCacheUsage,
    IReadOnlyDictionary<string, long> RequestsServedByModel);

/// <summary>
/// A window into a running MockEngine for tests of other components (e.g. "the engine that holds
/// the adapter served the request"). Not part of vLLM's surface: nothing reaches it over HTTP.
/// </summary>
public sealed class MockEngineInspector
{
    private readonly LoraAdapterRegistry _adapters;
    private readonly RealTimeEngineDriver _driver;
    private readonly ConcurrentDictionary<string, long> _served = new(StringComparer.Ordinal);

    internal MockEngineInspector(LoraAdapterRegistry adapters, RealTimeEngineDriver driver)
    {
        _adapters = adapters;
        _driver = driver;
    }

    /// <summary>Successful inference answers (complete, not aborted) for <paramref name="model"/>, base or adapter name.</summary>
    public long RequestsServed(string model) => _served.GetValueOrDefault(model);

    public MockEngineState Snapshot()
    {
        var (gpu, host, running, waiting, kv) = _driver.Read(m => (m.GpuAdapters, m.HostAdapters, m.RunningCount, m.WaitingCount, m.KvCacheUsage));
        return new MockEngineState(_adapters.List().Select(a => a.Name).ToArray(), gpu, host, running, waiting, kv,
            new Dictionary<string, long>(_served, StringComparer.Ordinal));
    }

    internal void RecordServed(string model) => _served.AddOrUpdate(model, 1, (_, n) => n + 1);
}
