using System.Diagnostics;

namespace HybridServing.AppHost.Orchestration;

/// <summary>A component that failed to start or stopped on its own, with its last output.</summary>
internal sealed class ResourceFailedException(string resource, string reason, IReadOnlyList<string> recentOutput)
    : Exception($"{resource} failed: {reason}")
{
    public string Resource { get; } = resource;
    public IReadOnlyList<string> RecentOutput { get; } = recentOutput;
}

/// <summary>
/// Starts resources in dependency order, each only after its dependencies answer their health URL,
/// watches them while they run, and stops them all (newest first) when asked or when one fails.
/// </summary>
internal sealed class Orchestrator(string repositoryRoot, Action<string, string> logSink, TimeSpan startTimeout) : IAsyncDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);
    private readonly List<ChildProcess> _running = [];
    private readonly HttpClient _health = new() { Timeout = TimeSpan.FromSeconds(2) };

    public IReadOnlyList<ChildProcess> Running => _running;

    public async Task StartAsync(IReadOnlyList<ResourceDefinition> resources, CancellationToken cancellationToken)
    {
        foreach (var batch in InDependencyOrder(resources))
        {
            // Resources of one level do not depend on each other: start them together.
            var started = batch.Select(r => (Resource: r, Process: ChildProcess.Start(r, ServiceBinaries.Locate(repositoryRoot, r.Project), logSink))).ToList();
            _running.AddRange(started.Select(s => s.Process));
            await Task.WhenAll(started.Select(s => WaitHealthyAsync(s.Resource, s.Process, cancellationToken)));
        }
    }

    /// <summary>Completes when any resource exits on its own; throws <see cref="ResourceFailedException"/> for it.</summary>
    public async Task WatchAsync(CancellationToken cancellationToken)
    {
        if (_running.Count == 0) return;
        var first = await Task.WhenAny(_running.Select(p => p.Exited)).WaitAsync(cancellationToken);
        var child = _running.First(p => p.Exited == first);
        throw new ResourceFailedException(child.Name, $"exited with code {await first}", child.RecentOutput);
    }

    public async Task StopAllAsync()
    {
        // Newest first: the gateway goes before the engines it forwards to.
        for (var i = _running.Count - 1; i >= 0; i--) await _running[i].StopAsync(StopGrace);
    }

    private async Task WaitHealthyAsync(ResourceDefinition resource, ChildProcess process, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        string last = "no answer yet";
        while (clock.Elapsed < startTimeout)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.Exited.IsCompleted)
                throw new ResourceFailedException(resource.Name, $"exited with code {process.Exited.Result} while starting", process.RecentOutput);
            try
            {
                using var response = await _health.GetAsync(resource.HealthUrl, cancellationToken);
                if (response.IsSuccessStatusCode) return;
                last = $"{resource.HealthUrl} answered {(int)response.StatusCode}";
            }
            catch (HttpRequestException e)
            {
                last = e.Message;
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                last = $"{resource.HealthUrl} timed out";
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
        }
        throw new ResourceFailedException(resource.Name, $"not healthy after {startTimeout.TotalSeconds:0} s ({last})", process.RecentOutput);
    }

    /// <summary>Groups resources into levels: each level depends only on earlier ones.</summary>
    internal static IReadOnlyList<IReadOnlyList<ResourceDefinition>> InDependencyOrder(IReadOnlyList<ResourceDefinition> resources)
    {
        var byName = resources.ToDictionary(r => r.Name);
        foreach (var r in resources)
        foreach (var d in r.DependsOn)
        {
            if (!byName.ContainsKey(d)) throw new ArgumentException($"{r.Name} depends on unknown resource '{d}'.");
        }

        var levels = new List<IReadOnlyList<ResourceDefinition>>();
        var done = new HashSet<string>();
        while (done.Count < resources.Count)
        {
            var ready = resources.Where(r => !done.Contains(r.Name) && r.DependsOn.All(done.Contains)).ToList();
            if (ready.Count == 0)
                throw new ArgumentException($"Dependency cycle among: {string.Join(", ", resources.Where(r => !done.Contains(r.Name)).Select(r => r.Name))}.");
            levels.Add(ready);
            foreach (var r in ready) done.Add(r.Name);
        }
        return levels;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAllAsync();
        foreach (var p in _running) await p.DisposeAsync();
        _health.Dispose();
    }
}
