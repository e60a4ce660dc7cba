using System.Security.Cryptography;

namespace HybridServing.Contracts.Peft;

/// <summary>What an adapter directory holds, read from its config and its safetensors header only.</summary>
public sealed record PeftAdapterInfo(
    string Directory,
    PeftConfig Config,
    int Rank,
    IReadOnlyList<string> TargetModules,
    long SizeBytes,
    int TensorCount,
    string WeightsFile);

/// <summary>Reads PEFT adapter directories: <c>adapter_config.json</c> plus <c>adapter_model.safetensors</c>.</summary>
public static class PeftAdapter
{
    public const string ConfigFileName = "adapter_config.json";
    public const string SafetensorsFileName = "adapter_model.safetensors";
    public const string BinFileName = "adapter_model.bin";

    /// <summary>adapter_config.json larger than this is refused rather than read.</summary>
    public const long MaxConfigBytes = 1 << 20;

    /// <summary>
    /// Reads and validates the adapter at <paramref name="directory"/> without loading the weights.
    /// Throws <see cref="PeftNotFoundException"/> when there is no adapter there and
    /// <see cref="PeftFormatException"/> when the files are malformed.
    /// </summary>
    public static PeftAdapterInfo Read(string directory)
    {
        var configPath = Path.Combine(directory, ConfigFileName);
        if (!System.IO.Directory.Exists(directory) || !File.Exists(configPath))
            throw new PeftNotFoundException(directory);

        var configLength = new FileInfo(configPath).Length;
        if (configLength > MaxConfigBytes)
            throw new PeftFormatException($"adapter_config.json is {configLength} bytes; the limit is {MaxConfigBytes}.");
        var config = PeftConfig.Parse(File.ReadAllBytes(configPath));

        var safetensors = Path.Combine(directory, SafetensorsFileName);
        if (File.Exists(safetensors))
        {
            var header = SafetensorsHeader.ReadFile(safetensors);
            if (header.Tensors.Count == 0)
                throw new PeftFormatException("adapter_model.safetensors holds no tensors.");
            return new PeftAdapterInfo(directory, config, config.EffectiveRank, config.TargetModules,
                header.TensorBytes, header.Tensors.Count, safetensors);
        }

        var bin = Path.Combine(directory, BinFileName);
        if (File.Exists(bin))
        {
            // Pickled weights cannot be inspected safely; size is the file size.
            return new PeftAdapterInfo(directory, config, config.EffectiveRank, config.TargetModules,
                new FileInfo(bin).Length, 0, bin);
        }
        throw new PeftNotFoundException(directory);
    }

    /// <summary>sha256 (lowercase hex) of the weights file: the adapter's digest.</summary>
    public static async Task<string> ComputeDigestAsync(string weightsFile, CancellationToken cancellationToken = default)
    {
        await using var stream = new FileStream(weightsFile, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        var hash = await SHA256.HashDataAsync(stream, cancellationToken);
        return Convert.ToHexStringLower(hash);
    }
}
