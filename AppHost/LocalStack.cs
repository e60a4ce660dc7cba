using HybridServing.AppHost.Orchestration;
using HybridServing.AppHost.Samples;
using HybridServing.AppHost.Topology;

namespace HybridServing.AppHost;

/// <summary>
/// The whole local stack as the AppHost runs it. <c>Program</c> and the end-to-end tests both start
/// it through <see cref="StartAsync"/>, so the tests exercise exactly what a developer runs.
/// </summary>
internal sealed class LocalStack : IAsyncDisposable
{
    public const string DevApiKey = "dev-key";
    public const string SamplesFolder = "samples";

    private readonly Orchestrator _orchestrator;

    private LocalStack(Orchestrator orchestrator, IReadOnlyList<ResourceDefinition> resources, string manifestsPath)
    {
        _orchestrator = orchestrator;
        Resources = resources;
        ManifestsPath = manifestsPath;
    }

    public IReadOnlyList<ResourceDefinition> Resources { get; }
    public string ManifestsPath { get; }
    public IReadOnlyList<ChildProcess> Processes => _orchestrator.Running;

    public Uri Endpoint(string resource, string endpoint = "http") =>
        Resources.Single(r => r.Name == resource).Endpoints.Single(e => e.Name == endpoint).Url;

    public static async Task<LocalStack> StartAsync(AppHostOptions options, Action<string, string> logSink, CancellationToken cancellationToken)
    {
        var root = ServiceBinaries.FindRepositoryRoot();
        string manifests;
        var roots = options.AdapterRoots.Select(Path.GetFullPath).ToList();
        if (options.ManifestsPath is null)
        {
            manifests = Path.Combine(root, "AppHost", SamplesFolder);
            SampleAdapters.EnsureGenerated(manifests, options.BaseModel, m => logSink("apphost", m));
        }
        else
        {
            manifests = Path.GetFullPath(options.ManifestsPath);
            if (!Directory.Exists(manifests))
                throw new AppHostOptionsException("--manifests", $"directory '{manifests}' does not exist");
        }
        if (roots.Count == 0) roots.Add(manifests);

        var state = Path.GetFullPath(options.StateDirectory ?? Path.Combine(root, ".hybridserving"));
        var resources = LocalTopology.Build(options, manifests, roots, state, DevApiKey);
        var orchestrator = new Orchestrator(root, logSink, options.StartTimeout);
        var stack = new LocalStack(orchestrator, resources, manifests);
        try
        {
            await orchestrator.StartAsync(resources, cancellationToken);
            return stack;
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    /// <summary>Completes when a component exits on its own (throws <see cref="ResourceFailedException"/>).</summary>
    public Task WatchAsync(CancellationToken cancellationToken) => _orchestrator.WatchAsync(cancellationToken);

    public ValueTask DisposeAsync() => _orchestrator.DisposeAsync();
}
