public enum TensorsModule {}
