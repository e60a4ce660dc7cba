using System.Collections.Concurrent;
using System.Globalization;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace HybridServing.Bench.Hosting;

/// <summary>
/// The local stack exactly as a developer runs it: the AppHost's own Aspire app model (MockEngines
/// <c>engine-i</c>, sidecars <c>engine-i-sidecar</c>, <c>controlplane</c>, <c>gateway</c>), started
/// through Aspire.Hosting.Testing with the AppHost's flags. A bench sets only configuration the
/// product exposes, as environment on named resources before the app is built. Every resource's
/// console goes to one log file; the bench's console stays quiet.
/// </summary>
internal sealed class AspireStack : IAsyncDisposable
{
    /// <summary>The API key of the local tenant (the AppHost's <c>dev-api-key</c> parameter) for the "default" namespace.</summary>
    public const string ApiKey = "bench-key";

    private readonly DistributedApplication _app;
    private readonly StreamWriter _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _recent = new(StringComparer.Ordinal);
    private readonly List<Task> _followers = [];
    private readonly ConcurrentDictionary<string, int> _pids = new(StringComparer.Ordinal);

    private AspireStack(DistributedApplication app, StreamWriter log)
    {
        _app = app;
        _log = log;
    }

    /// <summary>
    /// The AppHost's port flags for <paramref name="engines"/> engines, every port free (TestKit.Ports):
    /// engine i on B+i, sidecar i on B+engines+i (HTTP) and B+engines+10+i (gRPC), as the AppHost lays them out.
    /// </summary>
    public static IReadOnlyList<string> PortArgs(int engines)
    {
        var block = HybridServing.TestKit.Ports.GetFreeBlock(2 * engines + 10);
        return [
            "--engine-port-base", Invariant(block), "--sidecar-port-base", Invariant(block + engines),
            "--gateway-port", Invariant(HybridServing.TestKit.Ports.GetFree()),
            "--controlplane-port", Invariant(HybridServing.TestKit.Ports.GetFree()),
            "--controlplane-grpc-port", Invariant(HybridServing.TestKit.Ports.GetFree()),
        ];
    }

    /// <summary>
    /// Starts the AppHost with <paramref name="args"/> (its own command line), applies
    /// <paramref name="environment"/> (resource name → variables) and waits until every resource is healthy;
    /// <paramref name="withAutoscaler"/> keeps the AppHost's Autoscaler (on a free port) instead of a fixed pool.
    /// A resource that fails to start or exits throws <see cref="StackFailedException"/> with its last lines.
    /// </summary>
    public static async Task<AspireStack> StartAsync(IReadOnlyList<string> args, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> environment,
        string logPath, TimeSpan timeout, CancellationToken cancellationToken, bool withAutoscaler = false)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        // Most benchmarks measure a fixed pool: no Autoscaler putting idle engines to sleep between phases.
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
            withAutoscaler ? [.. args, "--autoscaler-port", Invariant(HybridServing.TestKit.Ports.GetFree())] : [.. args, "--no-autoscaler"], deadline.Token);
        builder.Configuration["Parameters:dev-api-key"] = ApiKey;
        // The bench's console carries its own progress: Aspire's host logs only errors, and not the
        // health probes that fail while a resource starts (health is awaited below).
        builder.Configuration["Logging:LogLevel:Default"] = "Error";
        builder.Configuration["Logging:LogLevel:Microsoft.Extensions.Diagnostics.HealthChecks"] = "None";
        foreach (var (name, variables) in environment)
        {
            var resource = builder.Resources.OfType<IResourceWithEnvironment>().SingleOrDefault(r => r.Name == name)
                ?? throw new InvalidOperationException($"the AppHost has no resource '{name}' (it has {string.Join(", ", builder.Resources.Select(r => r.Name))})");
            var resourceBuilder = builder.CreateResourceBuilder(resource);
            foreach (var (key, value) in variables) resourceBuilder.WithEnvironment(key, value);
        }
        var names = builder.Resources.OfType<ProjectResource>().Select(r => r.Name).ToList();
        var app = await builder.BuildAsync(deadline.Token);
        var stack = new AspireStack(app, new StreamWriter(logPath) { AutoFlush = true });
        try
        {
            stack.FollowLogs();
            await app.StartAsync(deadline.Token);
            foreach (var name in names)
            {
                try
                {
                    await app.ResourceNotifications.WaitForResourceHealthyAsync(name, WaitBehavior.StopOnResourceUnavailable, deadline.Token);
                }
                catch (DistributedApplicationException e)
                {
                    throw stack.Failed(name, e.Message);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw stack.Failed(name, $"not healthy after {timeout.TotalSeconds:0} s");
                }
            }
            return stack;
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    /// <summary>Process ids of the project resources by name, as far as Aspire has reported them.</summary>
    public IReadOnlyDictionary<string, int> ProcessIds => _pids;

    /// <summary>The URL of <paramref name="resource"/>'s endpoint (http by default).</summary>
    public Uri Endpoint(string resource, string endpoint = "http") => _app.GetEndpoint(resource, endpoint);

    /// <summary>
    /// Completes by throwing <see cref="StackFailedException"/> when a resource exits or fails on its own
    /// (Aspire's resource notifications); a run it happens in is void.
    /// </summary>
    public async Task WatchAsync(CancellationToken cancellationToken)
    {
        await foreach (var e in _app.ResourceNotifications.WatchAsync(cancellationToken))
        {
            var state = e.Snapshot.State?.Text;
            if (state == KnownResourceStates.Exited || state == KnownResourceStates.FailedToStart || state == KnownResourceStates.Finished)
                throw Failed(e.Resource.Name, $"{state} (exit code {e.Snapshot.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? "none"})");
        }
    }

    /// <summary>Streams each resource's console lines (keyed by its DCP instance id, learnt from the notifications) to the log file.</summary>
    private void FollowLogs()
    {
        var logger = _app.Services.GetRequiredService<ResourceLoggerService>();
        var followed = new HashSet<string>(StringComparer.Ordinal);
        lock (_followers) _followers.Add(Task.Run(async () =>
        {
            try
            {
                await foreach (var e in _app.ResourceNotifications.WatchAsync(_stop.Token))
                {
                    if (e.Resource is not ProjectResource) continue;
                    // DCP reports each project's process id as a snapshot property; a restart brings a new one.
                    if (e.Snapshot.Properties.FirstOrDefault(p => p.Name == "executable.pid")?.Value is { } pid
                        && int.TryParse(Convert.ToString(pid, CultureInfo.InvariantCulture), NumberStyles.Integer, CultureInfo.InvariantCulture, out var id))
                        _pids[e.Resource.Name] = id;
                    if (!followed.Add(e.ResourceId)) continue;
                    var name = e.Resource.Name;
                    var recent = _recent.GetOrAdd(name, _ => new ConcurrentQueue<string>());
                    lock (_followers) _followers.Add(Task.Run(async () =>
                    {
                        try
                        {
                            await foreach (var batch in logger.WatchAsync(e.ResourceId).WithCancellation(_stop.Token))
                            {
                                foreach (var line in batch)
                                {
                                    lock (_log) _log.WriteLine($"{name} | {line.Content}");
                                    recent.Enqueue(line.Content);
                                    while (recent.Count > 20) recent.TryDequeue(out _);
                                }
                            }
                        }
                        catch (OperationCanceledException) { }
                    }));
                }
            }
            catch (OperationCanceledException) { }
        }));
    }

    private StackFailedException Failed(string resource, string problem) =>
        new(resource, problem, [.. _recent.GetValueOrDefault(resource) ?? []]);

    private static string Invariant(int x) => x.ToString(CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        await _stop.CancelAsync();
        Task[] followers;
        lock (_followers) followers = [.. _followers];
        await Task.WhenAll(followers);
        _stop.Dispose();
        lock (_log) _log.Dispose();
    }
}

/// <summary>A resource of the stack failed to start, never got healthy, or exited on its own.</summary>
internal sealed class StackFailedException(string resource, string problem, IReadOnlyList<string> recentOutput)
    : Exception($"{resource}: {problem}")
{
    public string Resource { get; } = resource;
    public IReadOnlyList<string> RecentOutput { get; } = recentOutput;
}
