namespace HybridServing.AppHost.Orchestration;

/// <summary>A named endpoint of a resource, as Aspire names them (<c>http</c>, <c>grpc</c>).</summary>
internal sealed record ResourceEndpoint(string Name, Uri Url);

/// <summary>One child process of the local stack: which project, with what arguments and environment.</summary>
internal sealed record ResourceDefinition(
    string Name,
    string Project,
    IReadOnlyList<string> Arguments,
    IReadOnlyDictionary<string, string> Environment,
    Uri HealthUrl,
    IReadOnlyList<ResourceEndpoint> Endpoints,
    IReadOnlyList<string> DependsOn);
