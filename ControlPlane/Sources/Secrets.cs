using HybridServing.Contracts.Resources;

namespace HybridServing.ControlPlane.Sources;

/// <summary>Reads the secret a LoraAdapter names in <c>spec.credentialsSecretRef</c>.</summary>
internal interface ISecretReader
{
    /// <summary>The secret's keys and values. Throws <see cref="SourceException"/> (CredentialsMissing) when it does not exist.</summary>
    Task<IReadOnlyDictionary<string, string>> ReadAsync(string name, string @namespace, CancellationToken cancellationToken);

    /// <summary>What the sidecars are sent so they read the same secret themselves (<c>AdapterSpec.credentials_secret</c>), or
    /// null when they cannot (a local folder only this process reads: sidecars use their own configured credentials).</summary>
    string? SidecarReference(string name, string @namespace);
}

/// <summary>The Kubernetes home's secrets: the Secret in the LoraAdapter's own namespace, read through the API server
/// with the ControlPlane's ServiceAccount (RBAC: get on secrets).</summary>
internal sealed class KubernetesSecretReader(k8s.IKubernetes client) : ISecretReader
{
    public string SidecarReference(string name, string @namespace) => KubernetesSecrets.Reference(@namespace, name);

    public async Task<IReadOnlyDictionary<string, string>> ReadAsync(string name, string @namespace, CancellationToken cancellationToken)
    {
        try
        {
            return await KubernetesSecrets.ReadAsync(client, @namespace, name, cancellationToken);
        }
        catch (SecretUnavailableException e)
        {
            throw new SourceException(LoraAdapterReasons.CredentialsMissing, e.Message, e);
        }
    }
}

/// <summary>
/// Secrets as files: <c>{root}/{name}/{key}</c>, the layout of a Kubernetes secret volume (mount each secret at
/// <c>{root}/{name}</c>) and of a local folder. Values are trimmed (files usually end with a newline). Values
/// never appear in messages.
/// </summary>
internal sealed class DirectorySecretReader(string? root) : ISecretReader
{
    private const long MaxValueBytes = 64 * 1024;

    public Task<IReadOnlyDictionary<string, string>> ReadAsync(string name, string @namespace, CancellationToken cancellationToken) =>
        Task.FromResult(Read(name));

    public string? SidecarReference(string name, string @namespace) => null;

    private IReadOnlyDictionary<string, string> Read(string name)
    {
        if (string.IsNullOrEmpty(root))
            throw new SourceException(LoraAdapterReasons.CredentialsMissing,
                $"spec.credentialsSecretRef names secret '{name}', but ControlPlane:SecretsDirectory is not configured, so no secret can be read.");
        // The name is a DNS subdomain (validated), but never let it leave the folder.
        if (name.Length == 0 || name != Path.GetFileName(name) || name is "." or "..")
            throw new SourceException(LoraAdapterReasons.CredentialsMissing, $"spec.credentialsSecretRef.name '{name}' is not a usable secret name.");
        var dir = Path.Combine(root, name);
        if (!Directory.Exists(dir))
            throw new SourceException(LoraAdapterReasons.CredentialsMissing,
                $"secret '{name}' named by spec.credentialsSecretRef does not exist (no folder {dir}).");
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            foreach (var file in Directory.EnumerateFiles(dir))
            {
                var key = Path.GetFileName(file);
                if (key.StartsWith('.')) continue; // Kubernetes volumes hold ..data links beside the keys
                var info = new FileInfo(file);
                if (info.Length > MaxValueBytes) continue;
                values[key] = File.ReadAllText(file).Trim();
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SourceException(LoraAdapterReasons.CredentialsMissing, $"secret '{name}' cannot be read from {dir}: {e.GetType().Name}.");
        }
        return values;
    }
}

/// <summary>The source as a whole cannot be listed (unreachable, refused, credentials missing): the reconciler retries it with backoff.</summary>
internal sealed class SourceException(string reason, string message, Exception? inner = null) : Exception(message, inner)
{
    public string Reason { get; } = reason;
}

/// <summary>One adapter cannot be read (its files are missing or the server failed on them); the others proceed.</summary>
internal sealed class AdapterReadException(string reason, string message) : Exception(message)
{
    public string Reason { get; } = reason;
}
