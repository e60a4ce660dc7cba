using HybridServing.Contracts.Metrics;
using HybridServing.Contracts.OpenAi;

namespace HybridServing.Contracts.Engines;

/// <summary>The outcome of a load or unload call, with the engine's own words when it refused.</summary>
public sealed record EngineCallResult(bool Success, int StatusCode, string? ErrorType, string Message)
{
    /// <summary>True when the engine could not be reached or answered 5xx: worth retrying.</summary>
    public bool IsTransient => StatusCode == 0 || StatusCode >= 500;
}

/// <summary>
/// The engine's adapter and health API. One implementation per engine kind (vLLM, SGLang);
/// the MockEngine speaks vLLM's dialect.
/// </summary>
public interface IEngineClient
{
    string Kind { get; }
    Uri BaseAddress { get; }
    Task<EngineCallResult> LoadAdapterAsync(string name, string path, bool inPlace, CancellationToken cancellationToken);

    /// <summary>Loads with a pin request. Engines without pinning (vLLM) ignore it; SGLang never evicts pinned adapters.</summary>
    Task<EngineCallResult> LoadAdapterAsync(string name, string path, bool inPlace, bool pinned, CancellationToken cancellationToken) =>
        LoadAdapterAsync(name, path, inPlace, cancellationToken);
    Task<EngineCallResult> UnloadAdapterAsync(string name, CancellationToken cancellationToken);
    Task<IReadOnlyList<ModelCard>> ListModelsAsync(CancellationToken cancellationToken);
    Task<bool> IsHealthyAsync(CancellationToken cancellationToken);
    Task<EngineLoadSnapshot> GetLoadAsync(CancellationToken cancellationToken);
}
