using System.Net;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using HybridServing.Contracts.Peft;
using HybridServing.EngineSidecar.Configuration;

namespace HybridServing.EngineSidecar.Artifacts;

/// <summary>
/// <c>s3://bucket/prefix</c>: the PEFT files are the objects <c>prefix/adapter_config.json</c> and
/// <c>prefix/adapter_model.safetensors</c>. Endpoint override and path-style addressing serve MinIO, Ceph
/// and s3rver. Credentials: the Secret the adapter names (spec.credentialsSecretRef: AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN, AWS_ENDPOINT_URL, AWS_REGION, the keys the ControlPlane reads
/// too), else a mounted secret directory, else the SDK's chain (environment first).
/// </summary>
internal sealed class S3ArtifactFetcher : IArtifactFetcher, IDisposable
{
    private readonly Lazy<IAmazonS3> _client;
    private readonly S3Options _options;
    private readonly Func<string, string?> _environment;
    private readonly SourceCredentials _secrets;

    public S3ArtifactFetcher(S3Options options, Func<string, string?> environment, SourceCredentials secrets)
    {
        _options = options;
        _environment = environment;
        _secrets = secrets;
        _client = new Lazy<IAmazonS3>(() => CreateClient(options, environment));
    }

    public AdapterSourceKind Kind => AdapterSourceKind.S3;

    /// <summary>A client for the adapter's own Secret: its keys, and its endpoint and region when it names them.</summary>
    private async Task<IAmazonS3> CreateClientAsync(string reference, CancellationToken cancellationToken)
    {
        var secret = await _secrets.ReadAsync(reference, cancellationToken);
        var keys = SourceCredentials.Require(secret, reference, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY");
        AWSCredentials credentials = secret.GetValueOrDefault("AWS_SESSION_TOKEN") is { Length: > 0 } session
            ? new SessionAWSCredentials(keys[0], keys[1], session)
            : new BasicAWSCredentials(keys[0], keys[1]);
        string? Setting(string key) => secret.GetValueOrDefault(key) is { Length: > 0 } v ? v : null;
        return CreateClient(_options, key => key is "AWS_ENDPOINT_URL" or "AWS_REGION" ? Setting(key) ?? _environment(key) : _environment(key), credentials);
    }

    internal static IAmazonS3 CreateClient(S3Options options, Func<string, string?> environment, AWSCredentials? fromSecret = null)
    {
        var serviceUrl = options.ServiceUrl ?? environment("AWS_ENDPOINT_URL_S3") ?? environment("AWS_ENDPOINT_URL");
        var config = new AmazonS3Config
        {
            ForcePathStyle = options.ForcePathStyle ?? !string.IsNullOrEmpty(serviceUrl),
            // s3rver and many S3-compatible stores do not return the newer flexible checksums.
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        };
        var region = options.Region ?? environment("AWS_REGION") ?? environment("AWS_DEFAULT_REGION") ?? "us-east-1";
        if (!string.IsNullOrEmpty(serviceUrl))
        {
            config.ServiceURL = serviceUrl;
            config.AuthenticationRegion = region;
        }
        else
        {
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(region);
        }
        var credentials = fromSecret ?? FromSecretDirectory(options.CredentialsDirectory) ?? FromEnvironment(environment);
        return credentials is null ? new AmazonS3Client(config) : new AmazonS3Client(credentials, config);
    }

    /// <summary>Reads <c>aws_access_key_id</c>, <c>aws_secret_access_key</c> (and <c>aws_session_token</c>) files of a mounted secret.</summary>
    internal static AWSCredentials? FromSecretDirectory(string? directory)
    {
        if (string.IsNullOrWhiteSpace(directory)) return null;
        string? Read(string name)
        {
            var path = Path.Combine(directory, name);
            return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
        }
        var id = Read("aws_access_key_id");
        var secret = Read("aws_secret_access_key");
        if (string.IsNullOrEmpty(id) || string.IsNullOrEmpty(secret))
            throw new InvalidOperationException(
                $"Sidecar:S3:CredentialsDirectory '{directory}' must hold the files aws_access_key_id and aws_secret_access_key.");
        var session = Read("aws_session_token");
        return string.IsNullOrEmpty(session) ? new BasicAWSCredentials(id, secret) : new SessionAWSCredentials(id, secret, session);
    }

    /// <summary><c>AWS_ACCESS_KEY_ID</c> / <c>AWS_SECRET_ACCESS_KEY</c> (/ <c>AWS_SESSION_TOKEN</c>); else null and the
    /// SDK's own chain (profiles, web identity, instance metadata) applies.</summary>
    internal static AWSCredentials? FromEnvironment(Func<string, string?> environment)
    {
        var id = environment("AWS_ACCESS_KEY_ID");
        var secret = environment("AWS_SECRET_ACCESS_KEY");
        if (string.IsNullOrEmpty(id) || string.IsNullOrEmpty(secret)) return null;
        var session = environment("AWS_SESSION_TOKEN");
        return string.IsNullOrEmpty(session) ? new BasicAWSCredentials(id, secret) : new SessionAWSCredentials(id, secret, session);
    }

    public async Task FetchAsync(AdapterSource source, string directory, DownloadBudget budget, CancellationToken cancellationToken)
    {
        if (source.Credentials is { } reference)
        {
            using var own = await CreateClientAsync(reference, cancellationToken);
            await FetchAsync(own, source, directory, budget, cancellationToken);
            return;
        }
        IAmazonS3 client;
        try
        {
            client = _client.Value;
        }
        catch (Exception e) when (e is InvalidOperationException or AmazonClientException or IOException)
        {
            throw new ArtifactException(FailureReasons.Unauthorized, $"The S3 client cannot be created: {e.Message}", e);
        }
        await FetchAsync(client, source, directory, budget, cancellationToken);
    }

    private static async Task FetchAsync(IAmazonS3 client, AdapterSource source, string directory, DownloadBudget budget, CancellationToken cancellationToken)
    {
        if (AdapterArchive.IsArchive(source.Key ?? ""))
        {
            var archive = Path.Combine(directory, ".archive");
            await GetObjectAsync(client, source.Bucket!, source.Key!, archive, budget, cancellationToken);
            await AdapterArchive.ExtractAsync(archive, source.Key!, directory, budget.MaxBytes, cancellationToken);
            File.Delete(archive);
            return;
        }
        foreach (var file in new[] { PeftAdapter.ConfigFileName, PeftAdapter.SafetensorsFileName })
        {
            var key = string.IsNullOrEmpty(source.Key) ? file : source.Key + "/" + file;
            await GetObjectAsync(client, source.Bucket!, key, Path.Combine(directory, file), budget, cancellationToken);
        }
    }

    private static async Task GetObjectAsync(IAmazonS3 client, string bucket, string key, string path, DownloadBudget budget, CancellationToken cancellationToken)
    {
        var what = $"s3://{bucket}/{key}";
        GetObjectResponse response;
        try
        {
            response = await budget.WithIdleTimeoutAsync(what,
                ct => client.GetObjectAsync(new GetObjectRequest { BucketName = bucket, Key = key }, ct), cancellationToken);
        }
        catch (AmazonS3Exception e)
        {
            var reason = e.StatusCode switch
            {
                HttpStatusCode.NotFound => FailureReasons.NotFound,
                HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized => FailureReasons.Unauthorized,
                _ => FailureReasons.DownloadFailed,
            };
            throw new ArtifactException(reason, $"{what}: {(int)e.StatusCode} {e.ErrorCode}: {e.Message}", e);
        }
        catch (AmazonClientException e)
        {
            throw new ArtifactException(FailureReasons.DownloadFailed, $"{what}: {e.Message}", e);
        }
        catch (HttpRequestException e)
        {
            throw new ArtifactException(FailureReasons.DownloadFailed, $"{what}: {e.Message}", e);
        }
        using (response)
        {
            budget.Announce(what, response.ContentLength);
            await budget.CopyToFileAsync(what, response.ResponseStream, path, response.ContentLength, cancellationToken);
        }
    }

    public void Dispose()
    {
        if (_client.IsValueCreated) _client.Value.Dispose();
    }
}
