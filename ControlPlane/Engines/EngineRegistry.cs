using HybridServing.ControlPlane.Homes;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Engines;

/// <summary>The sidecar connections for the engines the home declares, kept in step with it.</summary>
internal sealed class EngineRegistry(IOptions<ControlPlaneOptions> options, TimeProvider time, ILoggerFactory loggers) : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, SidecarConnection> _connections = new(StringComparer.Ordinal);
    // Generations start from the wall clock so a restarted control plane still sends increasing ones.
    private readonly long _generationBase = time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;

    /// <summary>Raised when any engine's view changed.</summary>
    public event Action? Changed;

    /// <summary>Raised (engine, adapter) when an adapter became LOADED on an engine, before <see cref="Changed"/>.</summary>
    public event Action<string, string>? AdapterLoaded;

    /// <summary>Opens connections for new engines and closes those of engines no longer declared.</summary>
    public async Task SyncAsync(IReadOnlyList<EngineEndpoint> engines)
    {
        List<SidecarConnection> removed;
        lock (_gate)
        {
            var wanted = engines.ToDictionary(e => e.Name, StringComparer.Ordinal);
            removed = [.. _connections.Values.Where(c => !wanted.TryGetValue(c.Endpoint.Name, out var w) || w != c.Endpoint && !SameEndpoint(w, c.Endpoint))];
            foreach (var r in removed) _connections.Remove(r.Endpoint.Name);
            foreach (var e in engines)
            {
                if (_connections.ContainsKey(e.Name)) continue;
                var c = new SidecarConnection(e, options.Value, time, loggers.CreateLogger("HybridServing.ControlPlane.Engines.Sidecar"), _generationBase);
                c.Changed += () => Changed?.Invoke();
                c.AdapterLoaded += (engine, adapter) => AdapterLoaded?.Invoke(engine, adapter);
                _connections[e.Name] = c;
                c.Start();
            }
        }
        foreach (var r in removed) await r.DisposeAsync();
    }

    private static bool SameEndpoint(EngineEndpoint a, EngineEndpoint b) =>
        a.Name == b.Name && a.Node == b.Node && a.SidecarUrl == b.SidecarUrl
        && a.Labels.Count == b.Labels.Count && a.Labels.All(l => b.Labels.TryGetValue(l.Key, out var v) && v == l.Value);

    public IReadOnlyList<SidecarConnection> Connections
    {
        get { lock (_gate) return [.. _connections.Values.OrderBy(c => c.Endpoint.Name, StringComparer.Ordinal)]; }
    }

    public async ValueTask DisposeAsync()
    {
        List<SidecarConnection> all;
        lock (_gate)
        {
            all = [.. _connections.Values];
            _connections.Clear();
        }
        foreach (var c in all) await c.DisposeAsync();
    }
}
